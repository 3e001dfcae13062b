#include "live/common/node_address.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace orrery::live {

namespace {

// The machine's addresses in their canonical text form (inet_ntop), in interface order.
std::vector<std::string> MachineAddresses() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr) continue;
    char buf[INET6_ADDRSTRLEN] = {};
    if (a->ifa_addr->sa_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, buf, sizeof(buf));
    } else if (a->ifa_addr->sa_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ifa_addr)->sin6_addr, buf,
                sizeof(buf));
    } else {
      continue;
    }
    if (std::find(out.begin(), out.end(), buf) == out.end()) out.emplace_back(buf);
  }
  freeifaddrs(list);
  return out;
}

// `ip` in canonical form, or "" if it is not an IPv4/IPv6 literal.
std::string Canonical(const std::string& ip) {
  unsigned char raw[sizeof(in6_addr)];
  char buf[INET6_ADDRSTRLEN] = {};
  if (inet_pton(AF_INET, ip.c_str(), raw) == 1) {
    return inet_ntop(AF_INET, raw, buf, sizeof(buf)) ? buf : "";
  }
  if (inet_pton(AF_INET6, ip.c_str(), raw) == 1) {
    return inet_ntop(AF_INET6, raw, buf, sizeof(buf)) ? buf : "";
  }
  return "";
}

// InvalidArgument naming `flag` unless the canonical address `ip` is one of this machine's.
Status CheckOwned(const std::string& flag, const std::string& given, const std::string& ip) {
  const std::vector<std::string> mine = MachineAddresses();
  if (std::find(mine.begin(), mine.end(), ip) != mine.end()) return Status::Ok();
  std::string list;
  for (const auto& a : mine) list += (list.empty() ? "" : ", ") + a;
  return InvalidArgument(flag + " " + given +
                         ": this machine does not have that address (its addresses: " +
                         (list.empty() ? "none found" : list) + ")");
}

}  // namespace

bool IsWildcardBind(const std::string& bind) { return bind == "0.0.0.0" || bind == "::"; }

Status CheckBindAddress(const std::string& bind) {
  const std::string ip = Canonical(bind);
  if (ip.empty() || IsWildcardBind(ip)) return Status::Ok();
  return CheckOwned("--bind", bind, ip);
}

Status CheckNodeIp(const std::string& node_ip, const std::string& bind) {
  const std::string ip = Canonical(node_ip);
  if (ip.empty()) {
    return InvalidArgument("--node-ip: expected an IPv4 or IPv6 address of this machine, got '" +
                           node_ip + "'");
  }
  if (IsWildcardBind(ip)) {
    return InvalidArgument("--node-ip " + node_ip +
                           ": a wildcard cannot be dialled; give the address other machines "
                           "reach this one at");
  }
  ORRERY_RETURN_IF_ERROR(CheckOwned("--node-ip", node_ip, ip));
  if (!IsWildcardBind(bind) && Canonical(bind) != ip) {
    return InvalidArgument("--node-ip " + node_ip + ": the daemons listen on --bind " + bind +
                           " only, so nothing would answer there; pass --bind " + node_ip +
                           " or --bind 0.0.0.0");
  }
  return Status::Ok();
}

std::string AdvertisedHost(const std::string& node_ip, const std::string& bind,
                           const std::string& hostname) {
  if (!node_ip.empty()) return node_ip;
  return IsWildcardBind(bind) ? hostname : bind;
}

}  // namespace orrery::live
