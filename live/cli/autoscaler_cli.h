// The client side of the live autoscaler: asking the head for its state and printing it the way
// `orrery status` does (like `ray status`'s Pending / Active sections).
//
// Thread safety: free functions, no shared state.
#pragma once

#include <chrono>
#include <ostream>
#include <string>

#include "core/status.h"
#include "orrery.pb.h"

namespace orrery::live {

// HeadService.GetAutoscalerStatus with the cluster token and a deadline.
StatusOr<v1::AutoscalerStatus> GetAutoscalerStatus(
    const std::string& head_address, const std::string& token,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

// The "Autoscaler:" section of `orrery status`: nothing when the head runs no autoscaler.
void PrintAutoscalerStatus(const v1::AutoscalerStatus& s, std::ostream& out);

}  // namespace orrery::live
