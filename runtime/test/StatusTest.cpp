// StatusTest.cpp - status names and the per-thread last error.
#include "moe/runtime/status.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

TEST(Status, NamesEveryCode) {
  EXPECT_STREQ(moe_status_name(MOE_OK), "ok");
  EXPECT_STREQ(moe_status_name(MOE_INVALID_FORMAT), "invalid format");
  EXPECT_STREQ(moe_status_name(MOE_VERSION_MISMATCH), "version mismatch");
  EXPECT_STREQ(moe_status_name(static_cast<moe_status_t>(99)), "unknown status");
}

TEST(Status, LastErrorIsPerThread) {
  EXPECT_EQ(moe::runtime::fail(MOE_NOT_FOUND, "no tensor 'x'"), MOE_NOT_FOUND);
  EXPECT_STREQ(moe_last_error(), "no tensor 'x'");
  std::string other;
  std::thread([&] { other = moe_last_error(); }).join();
  EXPECT_EQ(other, "");
  EXPECT_STREQ(moe_last_error(), "no tensor 'x'");
}
