// plot.cc - the loss curve's PNG (plot.h).
#include "moe/runtime/plot.h"

#include "moe/runtime/artifact.h" // crc32

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace moe::runtime {
namespace {

/// A 3 x 5 pixel font for the labels: digits, '.', '-', 'e' and ' '.
const char *glyph(char c) {
  switch (c) {
  case '0':
    return "111101101101111";
  case '1':
    return "010110010010111";
  case '2':
    return "111001111100111";
  case '3':
    return "111001111001111";
  case '4':
    return "101101111001001";
  case '5':
    return "111100111001111";
  case '6':
    return "111100111101111";
  case '7':
    return "111001001001001";
  case '8':
    return "111101111101111";
  case '9':
    return "111101111001111";
  case '.':
    return "000000000000010";
  case '-':
    return "000000111000000";
  case 'e':
    return "000111111100111";
  default:
    return "000000000000000";
  }
}

struct Image {
  int width, height;
  std::vector<uint8_t> rgb;
  Image(int w, int h) : width(w), height(h), rgb(static_cast<size_t>(w) * h * 3, 255) {}
  void set(int x, int y, uint8_t r, uint8_t g, uint8_t b) {
    if (x < 0 || y < 0 || x >= width || y >= height)
      return;
    uint8_t *p = &rgb[(static_cast<size_t>(y) * width + x) * 3];
    p[0] = r, p[1] = g, p[2] = b;
  }
  /// A line from (x0, y0) to (x1, y1), Bresenham.
  void line(int x0, int y0, int x1, int y1, uint8_t r, uint8_t g, uint8_t b) {
    int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    for (int err = dx + dy;;) {
      set(x0, y0, r, g, b);
      set(x0, y0 + 1, r, g, b); // two pixels thick
      if (x0 == x1 && y0 == y1)
        break;
      int e2 = 2 * err;
      if (e2 >= dy)
        err += dy, x0 += sx;
      if (e2 <= dx)
        err += dx, y0 += sy;
    }
  }
  /// Text at (x, y), each font pixel drawn as 2 x 2.
  void text(int x, int y, const std::string &s) {
    for (char c : s) {
      const char *bits = glyph(c);
      for (int row = 0; row < 5; ++row)
        for (int col = 0; col < 3; ++col)
          if (bits[row * 3 + col] == '1')
            for (int k = 0; k < 4; ++k)
              set(x + col * 2 + k % 2, y + row * 2 + k / 2, 40, 40, 40);
      x += 8;
    }
  }
};

void putU32(std::vector<uint8_t> &out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8)
    out.push_back(static_cast<uint8_t>(v >> s));
}

void chunk(std::vector<uint8_t> &png, const char *type, const std::vector<uint8_t> &data) {
  putU32(png, static_cast<uint32_t>(data.size()));
  std::vector<uint8_t> body(type, type + 4);
  body.insert(body.end(), data.begin(), data.end());
  png.insert(png.end(), body.begin(), body.end());
  putU32(png, crc32(body.data(), body.size()));
}

/// The image as PNG bytes: 8-bit RGB, filter 0 per row, zlib with stored blocks.
std::vector<uint8_t> encode(const Image &img) {
  std::vector<uint8_t> raw;
  for (int y = 0; y < img.height; ++y) {
    raw.push_back(0);
    raw.insert(raw.end(), img.rgb.begin() + static_cast<ptrdiff_t>(y) * img.width * 3,
               img.rgb.begin() + static_cast<ptrdiff_t>(y + 1) * img.width * 3);
  }
  std::vector<uint8_t> z{0x78, 0x01};
  uint32_t a = 1, b = 0;
  for (uint8_t c : raw)
    a = (a + c) % 65521, b = (b + a) % 65521;
  for (size_t at = 0; at < raw.size() || at == 0;) {
    size_t n = std::min<size_t>(65535, raw.size() - at);
    z.push_back(at + n == raw.size() ? 1 : 0);
    z.push_back(static_cast<uint8_t>(n)), z.push_back(static_cast<uint8_t>(n >> 8));
    z.push_back(static_cast<uint8_t>(~n)), z.push_back(static_cast<uint8_t>(~n >> 8));
    z.insert(z.end(), raw.begin() + static_cast<ptrdiff_t>(at), raw.begin() + static_cast<ptrdiff_t>(at + n));
    at += n;
    if (at == raw.size())
      break;
  }
  putU32(z, (b << 16) | a);
  std::vector<uint8_t> png{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}, header;
  putU32(header, static_cast<uint32_t>(img.width));
  putU32(header, static_cast<uint32_t>(img.height));
  header.insert(header.end(), {8, 2, 0, 0, 0});
  chunk(png, "IHDR", header);
  chunk(png, "IDAT", z);
  chunk(png, "IEND", {});
  return png;
}

std::string label(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3g", v);
  return buffer;
}

} // namespace

moe_status_t writeLossPlot(const std::string &path, const std::vector<double> &losses, int width, int height) {
  if (losses.empty() || width < 64 || height < 64)
    return fail(MOE_INVALID_ARGUMENT, "a loss plot needs at least one step and 64 x 64 pixels");
  Image img(width, height);
  const int left = 60, right = width - 20, top = 20, bottom = height - 30;
  // Log scale over the positive losses (a zero or negative loss sits on the floor).
  double lo = INFINITY, hi = -INFINITY;
  for (double l : losses)
    if (l > 0 && std::isfinite(l))
      lo = std::min(lo, l), hi = std::max(hi, l);
  if (!std::isfinite(lo))
    lo = 1e-30, hi = 1;
  if (hi <= lo)
    hi = lo * 10;
  auto yOf = [&](double l) {
    double t = l > 0 && std::isfinite(l) ? (std::log(l) - std::log(lo)) / (std::log(hi) - std::log(lo)) : 0.0;
    return bottom - static_cast<int>(std::lround(std::clamp(t, 0.0, 1.0) * (bottom - top)));
  };
  auto xOf = [&](size_t i) {
    return left + (losses.size() == 1 ? 0 : static_cast<int>(i * (right - left) / (losses.size() - 1)));
  };
  // Grid lines at each power of ten, the axes, the curve.
  for (double p = std::pow(10.0, std::ceil(std::log10(lo))); p <= hi; p *= 10)
    for (int x = left; x <= right; x += 2)
      img.set(x, yOf(p), 200, 200, 200);
  img.line(left, top, left, bottom, 0, 0, 0);
  img.line(left, bottom, right, bottom, 0, 0, 0);
  for (size_t i = 1; i < losses.size(); ++i)
    img.line(xOf(i - 1), yOf(losses[i - 1]), xOf(i), yOf(losses[i]), 31, 119, 180);
  img.text(4, top, label(hi));
  img.text(4, bottom - 10, label(lo));
  img.text(left, bottom + 10, "1");
  std::string last = std::to_string(losses.size());
  img.text(right - 8 * static_cast<int>(last.size()), bottom + 10, last);
  std::vector<uint8_t> png = encode(img);
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f)
    return fail(MOE_NOT_FOUND, "cannot write " + path + ": " + std::strerror(errno));
  bool ok = std::fwrite(png.data(), 1, png.size(), f) == png.size();
  ok = std::fclose(f) == 0 && ok;
  return ok ? MOE_OK : fail(MOE_INTERNAL, "cannot write " + path + ": " + std::strerror(errno));
}

} // namespace moe::runtime
