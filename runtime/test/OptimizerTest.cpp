// OptimizerTest.cpp - AdamW against a float64 transcription of the update,
// its decay rules, f32 masters for bf16 parameters, determinism and
// sharding-independence, a convex problem it must solve, bad input; and the
// balance-bias update.
#include "moe/runtime/optimizer.h"
#include "moe/runtime/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace moe::runtime;

namespace {

Tensor randomTensor(const std::string &name, moe_dtype_t dtype, std::vector<int64_t> shape, std::mt19937 &rng) {
  Tensor t = Tensor::zeros(name, dtype, shape);
  std::normal_distribution<float> normal;
  std::vector<float> v(t.numElements());
  for (float &x : v)
    x = normal(rng);
  storeFloats(t, 0, v.data(), t.numElements());
  return t;
}

std::vector<float> values(const Tensor &t) {
  std::vector<float> out(t.numElements());
  for (int64_t i = 0; i < t.numElements(); ++i)
    out[i] = t.at(i);
  return out;
}

} // namespace

TEST(AdamW, MatchesTheUpdateInFloat64) {
  std::mt19937 rng(1);
  AdamWOptions o{0.01, 0.9, 0.99, 1e-8, 0.1};
  AdamW opt(o);
  std::vector<Tensor> params{randomTensor("w", MOE_F32, {3, 4}, rng), randomTensor("b", MOE_F32, {4}, rng)};
  std::vector<std::vector<double>> w, m, v;
  for (const Tensor &p : params) {
    std::vector<float> f = values(p);
    w.emplace_back(f.begin(), f.end());
    m.emplace_back(f.size(), 0.0);
    v.emplace_back(f.size(), 0.0);
  }
  for (int step = 1; step <= 5; ++step) {
    std::vector<Tensor> grads{randomTensor("w", MOE_F32, {3, 4}, rng), randomTensor("b", MOE_F32, {4}, rng)};
    ASSERT_EQ(opt.step(params, grads), MOE_OK) << moe_last_error();
    for (size_t i = 0; i < params.size(); ++i) {
      std::vector<float> g = values(grads[i]), got = values(params[i]);
      for (size_t j = 0; j < g.size(); ++j) {
        if (params[i].shape.size() >= 2) // decoupled decay, not for the 1-D bias
          w[i][j] *= 1 - o.lr * o.weightDecay;
        m[i][j] = o.beta1 * m[i][j] + (1 - o.beta1) * g[j];
        v[i][j] = o.beta2 * v[i][j] + (1 - o.beta2) * g[j] * g[j];
        double mh = m[i][j] / (1 - std::pow(o.beta1, step)), vh = v[i][j] / (1 - std::pow(o.beta2, step));
        w[i][j] -= o.lr * mh / (std::sqrt(vh) + o.eps);
        EXPECT_NEAR(got[j], w[i][j], 1e-5 * std::max(1.0, std::fabs(w[i][j]))) << params[i].name << "[" << j << "]";
      }
    }
  }
  EXPECT_EQ(opt.steps(), 5);
}

TEST(AdamW, KeepsF32MastersForBf16Parameters) {
  // Steps far below bf16's resolution at 1.0 accumulate in the master.
  AdamW opt({1e-4, 0.9, 0.999, 1e-8, 0.0});
  Tensor p = Tensor::zeros("w", MOE_BF16, {2, 2});
  std::vector<float> ones(4, 1.0f);
  storeFloats(p, 0, ones.data(), 4);
  std::vector<Tensor> params{p};
  Tensor g = Tensor::zeros("w", MOE_F32, {2, 2});
  storeFloats(g, 0, ones.data(), 4);
  for (int i = 0; i < 100; ++i)
    ASSERT_EQ(opt.step(params, {g}), MOE_OK);
  float master = opt.state().at("w").master[0];
  EXPECT_NEAR(master, 1.0f - 100 * 1e-4f, 1e-5); // every step counted
  EXPECT_EQ(params[0].dtype, MOE_BF16);
  EXPECT_EQ(params[0].at(0), 0.98828125f); // the master, rounded to bf16
}

TEST(AdamW, IsDeterministicAndIndependentOfSharding) {
  std::mt19937 rng(3);
  Tensor whole = randomTensor("experts.w", MOE_F32, {4, 6}, rng);
  std::vector<Tensor> grads;
  for (int i = 0; i < 4; ++i)
    grads.push_back(randomTensor("experts.w", MOE_F32, {4, 6}, rng));
  auto train = [&](Tensor p, const std::vector<Tensor> &gs) {
    AdamW opt({0.01, 0.9, 0.999, 1e-8, 0.05});
    std::vector<Tensor> params{p};
    for (const Tensor &g : gs)
      EXPECT_EQ(opt.step(params, {g}), MOE_OK);
    return params[0];
  };
  Tensor once = train(whole, grads), again = train(whole, grads);
  EXPECT_EQ(once.data, again.data);
  // The first two experts alone, as a rank of ep=2 holds them.
  auto rows = [](const Tensor &t, int64_t n) {
    Tensor s = Tensor::zeros(t.name, t.dtype, {n, t.shape[1]});
    std::copy_n(t.data.begin(), s.data.size(), s.data.begin());
    return s;
  };
  std::vector<Tensor> shardGrads;
  for (const Tensor &g : grads)
    shardGrads.push_back(rows(g, 2));
  Tensor shard = train(rows(whole, 2), shardGrads);
  EXPECT_TRUE(std::equal(shard.data.begin(), shard.data.end(), once.data.begin()));
}

TEST(AdamW, MinimisesAConvexQuadratic) {
  std::mt19937 rng(5);
  Tensor target = randomTensor("w", MOE_F32, {8, 8}, rng);
  std::vector<Tensor> params{Tensor::zeros("w", MOE_F32, {8, 8})};
  AdamW opt({0.05, 0.9, 0.999, 1e-8, 0.0});
  auto lossAndGrad = [&](Tensor &g) {
    double loss = 0;
    std::vector<float> d(64);
    for (int i = 0; i < 64; ++i) {
      d[i] = params[0].at(i) - target.at(i);
      loss += 0.5 * d[i] * d[i];
    }
    g = Tensor::zeros("w", MOE_F32, {8, 8});
    storeFloats(g, 0, d.data(), 64);
    return loss;
  };
  Tensor g;
  double first = lossAndGrad(g), last = first;
  for (int i = 0; i < 400; ++i) {
    ASSERT_EQ(opt.step(params, {g}), MOE_OK);
    last = lossAndGrad(g);
  }
  EXPECT_LT(last, first * 1e-4) << "from " << first << " to " << last;
}

TEST(AdamW, RefusesBadInput) {
  std::vector<Tensor> params{Tensor::zeros("w", MOE_F32, {2, 2})};
  AdamW bad({-1.0, 0.9, 0.999, 1e-8, 0.0});
  EXPECT_EQ(bad.step(params, {Tensor::zeros("w", MOE_F32, {2, 2})}), MOE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moe_last_error()).find("lr must be a non-negative number"), std::string::npos);
  AdamW opt({});
  EXPECT_EQ(opt.step(params, {Tensor::zeros("w", MOE_F32, {2, 3})}), MOE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moe_last_error()).find("gradient of \"w\" is [2, 3], the parameter [2, 2]"), std::string::npos);
  EXPECT_EQ(opt.step(params, {Tensor::zeros("v", MOE_F32, {2, 2})}), MOE_INVALID_ARGUMENT);
  EXPECT_EQ(opt.step(params, {}), MOE_INVALID_ARGUMENT);
  EXPECT_EQ(opt.steps(), 0); // nothing was applied
}

TEST(Schedule, FollowsTransformersSchedulesWithWarmup) {
  moe::runtime::TrainOptions o;
  o.adamw.lr = 1.0;
  o.steps = 11;
  o.warmupSteps = 2;
  // Steps 1, 2 warm up from 0 (transformers' step 0 and 1); step 3 is the peak.
  for (const char *schedule : {"constant", "linear", "cosine"}) {
    o.lrSchedule = schedule;
    EXPECT_EQ(moe::runtime::checkSchedule(o), MOE_OK);
    EXPECT_DOUBLE_EQ(moe::runtime::scheduledLr(o, 1), 0.0);
    EXPECT_DOUBLE_EQ(moe::runtime::scheduledLr(o, 2), 0.5);
    EXPECT_DOUBLE_EQ(moe::runtime::scheduledLr(o, 3), 1.0);
  }
  o.lrSchedule = "constant";
  EXPECT_DOUBLE_EQ(moe::runtime::scheduledLr(o, 11), 1.0);
  o.lrSchedule = "linear"; // (11 - 1 - 2) / (11 - 2) of the way down at the last step
  EXPECT_DOUBLE_EQ(moe::runtime::scheduledLr(o, 11), 1.0 - 8.0 / 9.0);
  o.lrSchedule = "cosine";
  EXPECT_NEAR(moe::runtime::scheduledLr(o, 11), 0.5 * (1 + std::cos(M_PI * 8.0 / 9.0)), 1e-15);
  o.lrSchedule = "step";
  EXPECT_EQ(moe::runtime::checkSchedule(o), MOE_INVALID_ARGUMENT);
  o.lrSchedule = "cosine";
  o.warmupSteps = 11;
  EXPECT_EQ(moe::runtime::checkSchedule(o), MOE_INVALID_ARGUMENT);
}

TEST(BalanceBias, MovesTowardTheMeanLoad) {
  Tensor bias = Tensor::zeros("router.bias", MOE_F32, {4});
  std::vector<float> b0{0.5f, 0.0f, -0.25f, 1.0f};
  storeFloats(bias, 0, b0.data(), 4);
  // Mean load 10: expert 0 overloaded, 1 at the mean, 2 and 3 underloaded.
  ASSERT_EQ(updateBalanceBias(bias, {16, 10, 4, 10 - 0}, 0.001), MOE_OK);
  EXPECT_FLOAT_EQ(bias.at(0), 0.5f - 0.001f);
  EXPECT_FLOAT_EQ(bias.at(1), 0.0f);
  EXPECT_FLOAT_EQ(bias.at(2), -0.25f + 0.001f);
  EXPECT_FLOAT_EQ(bias.at(3), 1.0f);
  EXPECT_EQ(updateBalanceBias(bias, {1, 2, 3}, 0.001), MOE_INVALID_ARGUMENT);
}
