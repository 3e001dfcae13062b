// GPU discovery (live/node/gpu_detect.h) against fake machines: no GPU is needed.
#include "live/node/gpu_detect.h"

#include <gtest/gtest.h>

#include <map>

namespace orrery::live {
namespace {

// A machine described by data: environment, what NVML / the CUDA runtime say, /dev entries.
struct FakeMachine final : GpuProbe {
  std::map<std::string, std::string> env;
  std::optional<std::vector<PhysicalGpu>> nvml;
  std::optional<int> cudart;
  std::vector<std::string> dev;

  std::optional<std::string> GetEnv(const std::string& name) const override {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  }
  std::optional<std::vector<PhysicalGpu>> QueryNvml() const override { return nvml; }
  std::optional<int> QueryCudart() const override { return cudart; }
  std::vector<std::string> ListDev() const override { return dev; }
};

constexpr uint64_t kGiB = 1ull << 30;

FakeMachine FourH100s() {
  FakeMachine m;
  m.nvml = std::vector<PhysicalGpu>{};
  for (int i = 0; i < 4; ++i) {
    m.nvml->push_back(
        {i, "NVIDIA H100 80GB HBM3", "GPU-000" + std::to_string(i) + "-aaaa", 80 * kGiB});
  }
  m.cudart = 4;
  m.dev = {"nvidia0", "nvidia1", "nvidia2", "nvidia3", "nvidiactl", "nvidia-uvm", "null"};
  return m;
}

TEST(GpuDetect, NoGpuAnywhereIsZeroDevices) {
  FakeMachine m;
  m.dev = {"null", "tty", "nvidiactl"};
  const auto inv = DetectGpuInventory(m);
  EXPECT_EQ(inv.count(), 0);
  EXPECT_EQ(inv.source, "none");
  EXPECT_EQ(inv.model(), "");
}

TEST(GpuDetect, NvmlGivesCountNamesMemoryAndIdentityIds) {
  const auto inv = DetectGpuInventory(FourH100s());
  EXPECT_EQ(inv.source, "nvml");
  ASSERT_EQ(inv.count(), 4);
  EXPECT_EQ(inv.model(), "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(inv.devices[2].memory_bytes, 80 * kGiB);
  EXPECT_EQ(inv.physical_ids(), (std::vector<std::string>{"0", "1", "2", "3"}));
}

TEST(GpuDetect, VisibleDevicesRestrictAndOrderNvmlDevices) {
  auto m = FourH100s();
  m.env["CUDA_VISIBLE_DEVICES"] = "3, 1";
  const auto inv = DetectGpuInventory(m);
  EXPECT_EQ(inv.physical_ids(), (std::vector<std::string>{"3", "1"}));
  EXPECT_EQ(inv.devices[0].name, "NVIDIA H100 80GB HBM3");
}

TEST(GpuDetect, VisibleDevicesMayNameUuidPrefixes) {
  auto m = FourH100s();
  m.env["CUDA_VISIBLE_DEVICES"] = "GPU-0002,GPU-0000-aaaa";
  EXPECT_EQ(DetectGpuInventory(m).physical_ids(),
            (std::vector<std::string>{"GPU-0002", "GPU-0000-aaaa"}));
}

TEST(GpuDetect, VisibleDevicesStopAtTheFirstUnknownId) {
  auto m = FourH100s();
  m.env["CUDA_VISIBLE_DEVICES"] = "1,7,2";
  EXPECT_EQ(DetectGpuInventory(m).physical_ids(), (std::vector<std::string>{"1"}));
}

TEST(GpuDetect, EmptyOrNoDevFilesHidesEveryGpu) {
  for (const char* v : {"", "NoDevFiles", " "}) {
    auto m = FourH100s();
    m.env["CUDA_VISIBLE_DEVICES"] = v;
    EXPECT_EQ(DetectGpuInventory(m).count(), 0) << "CUDA_VISIBLE_DEVICES='" << v << "'";
  }
}

TEST(GpuDetect, CudartFallbackTakesTheListedIds) {
  auto m = FourH100s();
  m.nvml.reset();
  m.cudart = 2;  // cudaGetDeviceCount already honours CUDA_VISIBLE_DEVICES
  m.env["CUDA_VISIBLE_DEVICES"] = "2,3";
  const auto inv = DetectGpuInventory(m);
  EXPECT_EQ(inv.source, "cudart");
  EXPECT_EQ(inv.physical_ids(), (std::vector<std::string>{"2", "3"}));
  EXPECT_EQ(inv.model(), "");  // no names without NVML: no gpu_model label
}

TEST(GpuDetect, DevFilesFallbackCountsNvidiaN) {
  auto m = FourH100s();
  m.nvml.reset();
  m.cudart.reset();
  const auto inv = DetectGpuInventory(m);
  EXPECT_EQ(inv.source, "dev");
  EXPECT_EQ(inv.count(), 4);
  m.env["CUDA_VISIBLE_DEVICES"] = "2,3,9";
  EXPECT_EQ(DetectGpuInventory(m).physical_ids(), (std::vector<std::string>{"2", "3"}));
}

TEST(GpuDetect, NvmlWithoutDevicesFallsThrough) {
  auto m = FourH100s();
  m.nvml = std::vector<PhysicalGpu>{};
  EXPECT_EQ(DetectGpuInventory(m).source, "cudart");
}

TEST(GpuDetect, MixedModelsGiveNoModelLabel) {
  auto m = FourH100s();
  (*m.nvml)[1].name = "NVIDIA A100-SXM4-40GB";
  EXPECT_EQ(DetectGpuInventory(m).model(), "");
}

TEST(GpuDetect, ParseVisibleDevicesFollowsCuda) {
  EXPECT_EQ(ParseVisibleDevices(std::nullopt), std::nullopt);
  EXPECT_EQ(ParseVisibleDevices(""), std::vector<std::string>{});
  EXPECT_EQ(ParseVisibleDevices("0,1"), (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(ParseVisibleDevices("0,,1"), (std::vector<std::string>{"0"}));
  EXPECT_EQ(ParseVisibleDevices("0,-1,1"), (std::vector<std::string>{"0"}));
}

// The regression this exists for: a node started with CUDA_VISIBLE_DEVICES=2,3 granting its
// logical GPUs {0,1} must hand the task 2,3, not 0,1.
TEST(GpuDetect, GrantMapsLogicalToPhysicalIds) {
  const std::vector<std::string> ids = {"2", "3"};
  EXPECT_EQ(VisibleDevicesForGrant({0, 1}, ids), "2,3");
  EXPECT_EQ(VisibleDevicesForGrant({1}, ids), "3");
  EXPECT_EQ(VisibleDevicesForGrant({}, ids), "");
  EXPECT_EQ(VisibleDevicesForGrant({0, 5}, ids), "2,5");  // beyond detection: identity
  EXPECT_EQ(VisibleDevicesForGrant({0, 1}, {}), "0,1");
}

TEST(GpuDetect, GrantReadsThisProcessesVisibleDevices) {
  ::setenv("CUDA_VISIBLE_DEVICES", "GPU-a,GPU-b", 1);
  EXPECT_EQ(VisibleDevicesForGrant({1, 0}), "GPU-b,GPU-a");
  ::unsetenv("CUDA_VISIBLE_DEVICES");
  EXPECT_EQ(VisibleDevicesForGrant({1, 0}), "1,0");
}

TEST(GpuDetect, SystemProbeNeverFails) {
  // Whatever this machine has, detection returns a consistent inventory.
  const auto inv = DetectGpuInventory(SystemGpuProbe());
  EXPECT_EQ(static_cast<size_t>(inv.count()), inv.physical_ids().size());
  EXPECT_EQ(inv.count() == 0, inv.source == "none");
}

}  // namespace
}  // namespace orrery::live
