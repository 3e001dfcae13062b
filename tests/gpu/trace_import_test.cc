// The Alibaba GPU trace importer: good files, and every kind of bad input names the file, the line
// and the column.
#include "core/io/gpu_trace.h"

#include <gtest/gtest.h>

#include "tests/gpu/gpu_test_util.h"

namespace orrery::gpu_replay {
namespace {

using io::ParseNodeList;
using io::ParsePodList;
using io::PodRecord;
using io::ReadNodeList;
using io::ReadPodList;

constexpr const char* kNodes =
    "sn,cpu_milli,memory_mib,gpu,model\n"
    "openb-node-0000,64000,262144,2,P100\n"
    "openb-node-0001,96000,786432,8,V100M32\n"
    "openb-node-0002,32000,131072,0,\n";

constexpr const char* kPods =
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
    "deletion_time,scheduled_time\n"
    "openb-pod-0000,12000,16384,1,1000,,LS,Running,0,12537496,0\n"
    "openb-pod-0001,6000,12288,1,460,,LS,Running,427061,12902960,427061\n"
    "openb-pod-0002,88000,327680,8,1000,V100M16|V100M32,BE,Succeeded,1,2,3\n"
    "openb-pod-0003,4000,8192,0,0,nan,BE,Running,1,2,3\n";

// The message of a failed parse ("" if it parsed).
std::string PodError(const std::string& text) {
  auto r = ParsePodList(text, "pods.csv");
  return r.ok() ? "" : r.status().message();
}
std::string NodeError(const std::string& text) {
  auto r = ParseNodeList(text, "nodes.csv");
  return r.ok() ? "" : r.status().message();
}

TEST(TraceImport, ReadsNodeLists) {
  auto nodes = ParseNodeList(kNodes, "nodes.csv");
  ASSERT_TRUE(nodes.ok()) << nodes.status().message();
  ASSERT_EQ(nodes->size(), 3u);
  EXPECT_EQ((*nodes)[1].id, "openb-node-0001");
  EXPECT_EQ((*nodes)[1].cpu_milli, 96000);
  EXPECT_EQ((*nodes)[1].memory_mib, 786432);
  EXPECT_EQ((*nodes)[1].num_gpus, 8);
  EXPECT_EQ((*nodes)[1].model, "V100M32");
  EXPECT_EQ((*nodes)[2].model, "");
}

TEST(TraceImport, ReadsPodLists) {
  auto pods = ParsePodList(kPods, "pods.csv");
  ASSERT_TRUE(pods.ok()) << pods.status().message();
  ASSERT_EQ(pods->size(), 4u);
  EXPECT_EQ((*pods)[1].gpu_milli, 460);
  EXPECT_EQ((*pods)[1].line, 3);
  EXPECT_EQ((*pods)[2].num_gpu, 8);
  EXPECT_EQ((*pods)[2].gpu_spec, "V100M16|V100M32");
  EXPECT_EQ((*pods)[3].gpu_spec, "");  // "nan" = no constraint
}

TEST(TraceImport, ColumnsByNameInAnyOrderOptionalNameAndSpec) {
  auto pods = ParsePodList("gpu_milli,num_gpu,memory_mib,cpu_milli\n500,1,1024,2000\n", "p.csv");
  ASSERT_TRUE(pods.ok()) << pods.status().message();
  EXPECT_EQ((*pods)[0].name, "pod-2");
  EXPECT_EQ((*pods)[0].cpu_milli, 2000);
  EXPECT_EQ((*pods)[0].gpu_milli, 500);
}

TEST(TraceImport, ToleratesCrlfBomQuotesBlankLinesAndWholeDecimals) {
  auto pods = ParsePodList(
      "\xEF\xBB\xBFname,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\r\n"
      "\"pod, one\",12000.0,16384,1,1000,\"V100M16|V100M32\"\r\n"
      "\r\n"
      "p2,1e3,0,0,0,\r\n",
      "pods.csv");
  ASSERT_TRUE(pods.ok()) << pods.status().message();
  ASSERT_EQ(pods->size(), 2u);
  EXPECT_EQ((*pods)[0].name, "pod, one");
  EXPECT_EQ((*pods)[0].cpu_milli, 12000);
  EXPECT_EQ((*pods)[1].cpu_milli, 1000);
  EXPECT_EQ((*pods)[1].line, 4);
}

TEST(TraceImport, MissingColumnNamesItAndTheHeader) {
  EXPECT_EQ(PodError("name,cpu_milli,memory_mib,gpu_milli\np,1,1,0\n"),
            "pods.csv:1: missing column 'num_gpu' (the header has: name, cpu_milli, memory_mib, "
            "gpu_milli)");
  EXPECT_EQ(NodeError("sn,cpu_milli,memory_mib,gpu\nn,1,1,0\n"),
            "nodes.csv:1: missing column 'model' (the header has: sn, cpu_milli, memory_mib, gpu)");
}

struct BadCell {
  const char* row;       // a data row for the header of kPods' first 6 columns
  const char* expected;  // the whole message
};

class BadPodRow : public ::testing::TestWithParam<BadCell> {};

TEST_P(BadPodRow, NamesFileLineAndColumn) {
  const std::string text = std::string("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n") +
                           "ok,1000,1024,1,500,\n" + GetParam().row + "\n";
  EXPECT_EQ(PodError(text), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadPodRow,
    ::testing::Values(
        BadCell{"p,lots,1024,1,500,",
                "pods.csv:3: column 'cpu_milli': expected a whole number in [0, 1099511627776], "
                "got 'lots'"},
        BadCell{"p,1000,-5,1,500,",
                "pods.csv:3: column 'memory_mib': expected a whole number in [0, 1099511627776], "
                "got '-5'"},
        BadCell{"p,1000,1024,1.5,500,",
                "pods.csv:3: column 'num_gpu': expected a whole number in [0, 16], got '1.5'"},
        BadCell{"p,1000,1024,1,,",
                "pods.csv:3: column 'gpu_milli': expected a whole number in [0, 1000], got ''"},
        BadCell{"p,1000,1024,1,1500,",
                "pods.csv:3: column 'gpu_milli': expected a whole number in [0, 1000], got '1500'"},
        BadCell{"p,1000,1024,0,500,",
                "pods.csv:3: column 'gpu_milli': expected 0 when num_gpu is 0, got '500'"},
        BadCell{"p,1000,1024,1,0,",
                "pods.csv:3: column 'gpu_milli': expected a share in [1, 1000] when num_gpu is 1, "
                "got '0'"},
        BadCell{"p,1000,1024,2,500,",
                "pods.csv:3: column 'gpu_milli': expected 1000 when num_gpu > 1 (multi-GPU pods "
                "take whole devices), got '500'"},
        BadCell{"p,1000,1024,17,1000,",
                "pods.csv:3: column 'num_gpu': expected a whole number in [0, 16], got '17'"},
        BadCell{"p,1000,1024,1,500", "pods.csv:3: expected 6 fields (as the header), got 5"},
        BadCell{"\"p,1000,1024,1,500,", "pods.csv:3: unterminated quoted field"},
        BadCell{"p,nan,1024,1,500,",
                "pods.csv:3: column 'cpu_milli': expected a whole number in [0, 1099511627776], "
                "got 'nan'"}));

TEST(TraceImport, BadNodeRows) {
  const std::string header = "sn,cpu_milli,memory_mib,gpu,model\n";
  EXPECT_EQ(NodeError(header + "a,1000,1024,2,T4\na,1000,1024,2,T4\n"),
            "nodes.csv:3: column 'sn': duplicate node id 'a' (first on line 2)");
  EXPECT_EQ(NodeError(header + ",1000,1024,2,T4\n"),
            "nodes.csv:2: column 'sn': expected a node id, got ''");
  EXPECT_EQ(NodeError(header + "a,1000,1024,x,T4\n"),
            "nodes.csv:2: column 'gpu': expected a whole number in [0, 16], got 'x'");
  EXPECT_EQ(NodeError(header + "a,1000,1024,2,T4|V100\n"),
            "nodes.csv:2: column 'model': expected one GPU model name (no '|'), got 'T4|V100'");
}

TEST(TraceImport, EmptyAndHeaderOnlyFiles) {
  EXPECT_EQ(PodError(""), "pods.csv: empty file (expected a header line naming the columns)");
  EXPECT_EQ(PodError("\n\n"), "pods.csv: empty file (expected a header line naming the columns)");
  EXPECT_EQ(PodError("cpu_milli,memory_mib,num_gpu,gpu_milli\n"),
            "pods.csv: no pods (only a header)");
  EXPECT_EQ(NodeError("sn,cpu_milli,memory_mib,gpu,model\n"),
            "nodes.csv: no nodes (only a header)");
}

TEST(TraceImport, MissingFileIsNotFound) {
  auto r = ReadPodList("/nonexistent/pods.csv");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "/nonexistent/pods.csv: cannot open the trace file");
}

TEST(TraceImport, ReadsEveryListOfTheRealTrace) {
  const std::string dir = gpu::testing::TraceDir() + "/alibaba-gpu-v2023/csv/";
  auto nodes = ReadNodeList(dir + "openb_node_list_gpu_node.csv");
  if (!nodes.ok() && nodes.status().code() == StatusCode::kNotFound) {
    GTEST_SKIP() << "trace not present: " << nodes.status().message();
  }
  ASSERT_TRUE(nodes.ok()) << nodes.status().message();
  EXPECT_EQ(nodes->size(), 1213u);
  int64_t gpus = 0;
  for (const auto& n : *nodes) gpus += n.num_gpus;
  EXPECT_EQ(gpus, 6212);
  auto all = ReadNodeList(dir + "openb_node_list_all_node.csv");
  ASSERT_TRUE(all.ok()) << all.status().message();
  EXPECT_EQ(all->size(), 1523u);
  for (const char* list : {"default", "cpu250", "gpushare100", "multigpu50", "gpuspec33"}) {
    auto pods = ReadPodList(dir + "openb_pod_list_" + list + ".csv");
    ASSERT_TRUE(pods.ok()) << pods.status().message();
    EXPECT_GT(pods->size(), 1000u) << list;
  }
  EXPECT_EQ(ReadPodList(dir + "openb_pod_list_default.csv")->size(), 8152u);
}

}  // namespace
}  // namespace orrery::gpu_replay
