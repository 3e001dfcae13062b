// One C++ API session against a LiveCluster (tests/live/live_cluster.h): Init on construction
// (the cluster's address and token over `options`), Shutdown on destruction, so a failed test
// never leaves the process-wide runtime behind.
#pragma once

#include "core/status.h"
#include "live/api/orrery_api.h"
#include "tests/live/live_cluster.h"

namespace orrery::live::test {

class ApiSession {
 public:
  explicit ApiSession(LiveCluster& c, orrery::api::InitOptions options = {}) {
    options.address = c.address();
    options.token = c.Token();
    status_ = orrery::api::Init(options);
  }
  ~ApiSession() { orrery::api::Shutdown(); }
  ApiSession(const ApiSession&) = delete;
  ApiSession& operator=(const ApiSession&) = delete;
  const Status& status() const { return status_; }

 private:
  Status status_;
};

}  // namespace orrery::live::test
