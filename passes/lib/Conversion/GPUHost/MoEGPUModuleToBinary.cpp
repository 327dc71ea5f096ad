//===- MoEGPUModuleToBinary.cpp - moe-gpu-module-to-binary -------*- C++ -*-===//
//
// gpu-module-to-binary{format=isa} with a module's kernels compiled on
// several threads, the PTX of the parts merged into what one serial compile
// prints (see the pass description in Passes.td).
//
//===----------------------------------------------------------------------===//
#include "moe/Conversion/Passes.h"
#include "moe/Support/MLIR.h"

#include "mlir/Dialect/GPU/IR/CompilationInterfaces.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Threading.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Debug.h"
#include "llvm/Support/Regex.h"

#include <map>
#include <thread>

#define DEBUG_TYPE "moe-gpu-module-to-binary"

namespace moe {
#define GEN_PASS_DEF_MOEGPUMODULETOBINARY
#include "moe/Conversion/Passes.h.inc"
} // namespace moe

using namespace mlir;

namespace {

/// One part's PTX, cut into its header, module-scope lines and kernels.
struct PtxPieces {
  std::string header;                                       ///< up to and including `.address_size`
  std::vector<std::string> moduleScope;                     ///< declarations and comments outside kernels
  std::vector<std::pair<std::string, std::string>> kernels; ///< name, text (from `// .globl`)
};

/// Splits NVPTX's output: header, blank line, then for each kernel a
/// `\t// .globl\tNAME` line, (module-scope lines before the first kernel),
/// `.visible .entry NAME(` ... `}`.
std::optional<PtxPieces> splitPtx(llvm::StringRef ptx) {
  PtxPieces out;
  size_t at = ptx.find(".address_size");
  if (at == llvm::StringRef::npos)
    return std::nullopt;
  at = ptx.find('\n', at);
  out.header = ptx.take_front(at + 1).str();
  llvm::SmallVector<llvm::StringRef> lines;
  ptx.drop_front(at + 1).split(lines, '\n');
  std::string *current = nullptr;
  std::string pendingGlobl, statement;
  for (llvm::StringRef line : lines) {
    if (line.starts_with("\t// .globl\t")) {
      pendingGlobl = line.str() + "\n";
      current = nullptr;
      continue;
    }
    if (line.starts_with(".visible .entry ")) {
      llvm::StringRef name = line.drop_front(strlen(".visible .entry ")).take_until([](char c) { return c == '('; });
      out.kernels.push_back({name.str(), pendingGlobl + line.str() + "\n"});
      pendingGlobl.clear();
      current = &out.kernels.back().second;
      continue;
    }
    if (current) {
      *current += line.str() + "\n";
      if (line == "}")
        current = nullptr;
      continue;
    }
    if (line.empty())
      continue;
    // A declaration may span lines (`.extern .func (...) name\n(\n...\n)\n;`):
    // it ends at a line ending in ';'. Comments stand alone.
    if (!statement.empty() || (!line.starts_with("//") && !line.ends_with(";"))) {
      statement += line.str() + "\n";
      if (line.ends_with(";")) {
        statement.pop_back();
        out.moduleScope.push_back(statement);
        statement.clear();
      }
      continue;
    }
    out.moduleScope.push_back(line.str());
  }
  return out;
}

/// Renumbers a kernel's function-numbered names (`$L__BB<n>_`, `__local_depot<n>`)
/// from its index in its part to its index in the whole module.
std::string renumber(const std::string &text, unsigned from, unsigned to) {
  if (from == to)
    return text;
  std::string out = text;
  for (const char *prefix : {"$L__BB", "__local_depot"}) {
    std::string old = prefix + std::to_string(from), now = prefix + std::to_string(to);
    std::string result;
    size_t pos = 0;
    while (true) {
      size_t hit = out.find(old, pos);
      // Only whole numbers: $L__BB1_ must not match inside $L__BB12_.
      while (hit != std::string::npos && hit + old.size() < out.size() && isdigit(out[hit + old.size()]))
        hit = out.find(old, hit + 1);
      if (hit == std::string::npos) {
        result += out.substr(pos);
        break;
      }
      result += out.substr(pos, hit - pos) + now;
      pos = hit + old.size();
    }
    out = std::move(result);
  }
  return out;
}

/// Renumbers a module-wide counter that NVPTX prints after `tag` in a
/// kernel body (`// callseq N`, and the `${:uid}` of inline asm, which the
/// generated kernels use in labels `waitB<N>`): each number new to the
/// kernel takes the next value of the merged text's count.
std::string renumberCounter(const std::string &text, const std::string &tag, unsigned &next) {
  std::string out;
  std::map<unsigned, unsigned> seen;
  size_t pos = 0;
  while (true) {
    size_t hit = text.find(tag, pos);
    if (hit == std::string::npos) {
      out += text.substr(pos);
      return out;
    }
    size_t digits = hit + tag.size(), end = digits;
    while (end < text.size() && isdigit(text[end]))
      ++end;
    out += text.substr(pos, digits - pos);
    if (end == digits) {
      pos = digits;
      continue;
    }
    unsigned local = std::stoul(text.substr(digits, end - digits));
    auto [it, inserted] = seen.try_emplace(local, next);
    if (inserted)
      ++next;
    out += std::to_string(it->second);
    pos = end;
  }
}

/// The index in `symbols` of the symbol a module-scope statement names
/// (whole identifiers only), or past the end when it names none.
unsigned rankOf(const std::string &statement, const std::vector<std::string> &symbols) {
  auto isIdentifier = [](char c) { return isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$'; };
  for (auto [i, name] : llvm::enumerate(symbols))
    for (size_t at = statement.find(name); at != std::string::npos; at = statement.find(name, at + 1)) {
      bool starts = at == 0 || !isIdentifier(statement[at - 1]);
      bool ends = at + name.size() == statement.size() || !isIdentifier(statement[at + name.size()]);
      if (starts && ends)
        return i;
    }
  return symbols.size();
}

/// The smallest number printed after `tag` in `text` (~0u if none).
unsigned firstCount(const std::string &text, const std::string &tag) {
  unsigned best = ~0u;
  for (size_t at = text.find(tag); at != std::string::npos; at = text.find(tag, at + 1)) {
    size_t end = at + tag.size();
    unsigned value = 0;
    bool any = false;
    while (end < text.size() && isdigit(text[end])) {
      value = value * 10 + (text[end++] - '0');
      any = true;
    }
    if (any)
      best = std::min(best, value);
  }
  return best;
}

struct MoEGPUModuleToBinary : moe::impl::MoEGPUModuleToBinaryBase<MoEGPUModuleToBinary> {
  using MoEGPUModuleToBinaryBase::MoEGPUModuleToBinaryBase;

  void runOnOperation() override {
    SmallVector<gpu::GPUModuleOp> modules(getOperation().getOps<gpu::GPUModuleOp>());
    for (gpu::GPUModuleOp m : modules)
      if (failed(serialize(m)))
        return signalPassFailure();
  }

  LogicalResult serialize(gpu::GPUModuleOp m) {
    ArrayAttr targets = m.getTargetsAttr();
    if (!targets || targets.size() != 1)
      return m.emitError() << "moe-gpu-module-to-binary needs exactly one target on gpu.module @" << m.getName()
                           << ", got " << (targets ? targets.size() : 0);
    auto target = dyn_cast<gpu::TargetAttrInterface>(targets[0]);
    if (!target)
      return m.emitError() << "the target of gpu.module @" << m.getName() << " cannot serialize";
    gpu::TargetOptions options({}, {}, {}, {}, gpu::CompilationTarget::Assembly);

    // The kernels in module order, each with its size (ops) for the partition.
    SmallVector<LLVM::LLVMFuncOp> kernels;
    bool onlyKernels = true;
    for (auto fn : m.getOps<LLVM::LLVMFuncOp>()) {
      if (fn.isExternal())
        continue;
      if (!fn->hasAttr("nvvm.kernel") && !fn->hasAttr("gpu.kernel"))
        onlyKernels = false;
      kernels.push_back(fn);
    }
    unsigned wanted = parts ? parts.getValue() : std::max(1u, std::thread::hardware_concurrency());
    if (!getContext().isMultithreadingEnabled())
      wanted = 1;
    unsigned numParts = onlyKernels ? std::min<unsigned>(wanted, kernels.size()) : 1;
    numParts = std::max(1u, numParts);

    // Largest first onto the lightest part.
    SmallVector<unsigned> order(kernels.size());
    SmallVector<int64_t> size(kernels.size(), 0);
    for (unsigned i = 0; i < kernels.size(); ++i) {
      order[i] = i;
      kernels[i].walk([&](Operation *) { ++size[i]; });
    }
    llvm::stable_sort(order, [&](unsigned a, unsigned b) { return size[a] > size[b]; });
    SmallVector<int64_t> load(numParts, 0);
    SmallVector<unsigned> partOf(kernels.size(), 0);
    for (unsigned k : order) {
      unsigned lightest = std::min_element(load.begin(), load.end()) - load.begin();
      partOf[k] = lightest;
      load[lightest] += size[k];
    }
    LLVM_DEBUG(llvm::dbgs() << "serializing @" << m.getName() << ": " << kernels.size() << " kernels in " << numParts
                            << " parts\n");

    // One copy of the module a part, keeping that part's kernels.
    llvm::StringMap<unsigned> kernelIndex;
    for (auto [i, fn] : llvm::enumerate(kernels))
      kernelIndex[fn.getName()] = i;
    SmallVector<OwningOpRef<gpu::GPUModuleOp>> copies;
    for (unsigned p = 0; p < numParts; ++p) {
      OwningOpRef<gpu::GPUModuleOp> copy(cast<gpu::GPUModuleOp>(m->clone()));
      if (numParts > 1)
        for (auto fn : llvm::make_early_inc_range(copy->getOps<LLVM::LLVMFuncOp>()))
          if (!fn.isExternal() && partOf[kernelIndex.lookup(fn.getName())] != p)
            fn.erase();
      copies.push_back(std::move(copy));
    }
    SmallVector<std::optional<SmallVector<char, 0>>> objects(numParts);
    if (failed(failableParallelForEachN(&getContext(), 0, numParts, [&](size_t p) {
          objects[p] = target.serializeToObject(copies[p].get(), options);
          return success(objects[p].has_value());
        })))
      return m.emitError() << "failed to serialize gpu.module @" << m.getName() << " to PTX";

    SmallVector<char, 0> merged;
    if (numParts == 1) {
      merged = std::move(*objects[0]);
    } else {
      std::optional<std::string> text = merge(objects, kernels, m);
      if (!text)
        return failure();
      merged.assign(text->begin(), text->end());
    }
    Attribute object = target.createObject(m, merged, options);
    if (!object)
      return m.emitError() << "the target made no object of gpu.module @" << m.getName();
    OpBuilder b(m);
    gpu::BinaryOp::create(b, m.getLoc(), m.getName(), m.getOffloadingHandlerAttr(), b.getArrayAttr({object}));
    m.erase();
    return success();
  }

  /// Merges the parts' PTX: the first header, each module-scope line once
  /// (in the order of the kernels they name), the kernels in module order.
  std::optional<std::string> merge(SmallVector<std::optional<SmallVector<char, 0>>> &objects,
                                   MutableArrayRef<LLVM::LLVMFuncOp> kernels, gpu::GPUModuleOp m) {
    bool terminated = false;
    llvm::StringMap<std::pair<std::string, unsigned>> bodies; // name -> text, index in its part
    std::vector<std::pair<unsigned, std::string>> scope;      // (rank, statement)
    // NVPTX prints the declarations of external functions first, then the
    // globals (a demoted one as a comment), each in module order: rank the
    // statements by the symbol they name.
    std::vector<std::string> symbols;
    for (auto fn : m.getOps<LLVM::LLVMFuncOp>())
      if (fn.isExternal())
        symbols.push_back(fn.getName().str());
    for (auto global : m.getOps<LLVM::GlobalOp>())
      symbols.push_back(global.getSymName().str());
    std::string header;
    llvm::StringSet<> seen;
    for (auto &object : objects) {
      llvm::StringRef text(object->data(), object->size());
      if (text.ends_with(llvm::StringRef("\0", 1))) {
        terminated = true;
        text = text.drop_back();
      }
      std::optional<PtxPieces> pieces = splitPtx(text);
      if (!pieces) {
        m.emitError() << "cannot merge the PTX of gpu.module @" << m.getName() << ": no .address_size";
        return std::nullopt;
      }
      if (header.empty())
        header = pieces->header;
      for (auto [i, kernel] : llvm::enumerate(pieces->kernels))
        bodies[kernel.first] = {kernel.second, static_cast<unsigned>(i)};
      for (const std::string &line : pieces->moduleScope)
        if (seen.insert(line).second)
          scope.push_back({rankOf(line, symbols), line});
    }
    std::stable_sort(scope.begin(), scope.end(), [](auto &a, auto &b) { return a.first < b.first; });
    std::string out = header + "\n";
    // Each part counts from the same start: the smallest number any part printed.
    unsigned calls = 0, uids = ~0u;
    for (auto &entry : bodies)
      uids = std::min(uids, firstCount(entry.getValue().first, "waitB"));
    if (uids == ~0u)
      uids = 0;
    for (auto [i, fn] : llvm::enumerate(kernels)) {
      auto it = bodies.find(fn.getName());
      if (it == bodies.end()) {
        m.emitError() << "cannot merge the PTX of gpu.module @" << m.getName() << ": kernel " << fn.getName()
                      << " is missing";
        return std::nullopt;
      }
      std::string body = renumber(it->second.first, it->second.second, i);
      body = renumberCounter(body, "// callseq ", calls);
      body = renumberCounter(body, "waitB", uids);
      if (i == 0) {
        // NVPTX puts the module-scope declarations after the first kernel's
        // `.globl` line.
        size_t eol = body.find('\n');
        out += body.substr(0, eol + 1);
        for (auto &line : scope)
          out += line.second + "\n";
        out += "\n" + body.substr(eol + 1);
      } else {
        out += body;
      }
    }
    if (terminated)
      out.push_back('\0');
    return out;
  }
};

} // namespace
