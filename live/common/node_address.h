// The address a daemon advertises to the rest of the cluster (`--node-ip`, the shared contract
// of issue 17): what other machines dial to reach this node (or the head), as opposed to
// `--bind`, where it listens.
//
// Thread safety: free functions; CheckNodeIp reads the machine's interface list (getifaddrs).
#pragma once

#include <string>

#include "core/status.h"

namespace orrery::live {

// Ok if `node_ip` is an IPv4/IPv6 literal that one of this machine's interfaces holds and that a
// daemon listening on `bind` is reachable at (bind equal to it, or a wildcard 0.0.0.0 / ::).
// InvalidArgument naming the flag otherwise, e.g. "--node-ip 198.18.0.99: this machine does not
// have that address (its addresses: 127.0.0.1, 198.18.0.11)". O(interfaces).
Status CheckNodeIp(const std::string& node_ip, const std::string& bind);

// Ok if `bind` is a wildcard, a name (not checked here), or an IP literal this machine holds;
// InvalidArgument "--bind 198.18.0.77: this machine does not have that address (...)" otherwise.
Status CheckBindAddress(const std::string& bind);

// The host part of the address to advertise: `node_ip` if set, else `bind` unless it is a
// wildcard, else `hostname`.
std::string AdvertisedHost(const std::string& node_ip, const std::string& bind,
                           const std::string& hostname);

// True for 0.0.0.0 and :: (listen on every interface).
bool IsWildcardBind(const std::string& bind);

}  // namespace orrery::live
