// The Docker Engine API parsers against upstream examples (tests/fixtures/upstream/docker, copied from
// ../shared/fixtures/docker; see its README for provenance) and against broken input.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <simdjson.h>

#include "skopos/docker_api.h"

namespace skopos {
namespace {

std::string fixture(const std::string& name) {
  std::ifstream in(std::string(SKOPOS_FIXTURES_DIR) + "/docker/" + name);
  EXPECT_TRUE(in) << name;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(DockerApi, ParsesTheMesosBridgeContainer) {
  auto info = parse_container_inspect(fixture("container-inspect.mesos-bridge.derived.json"));
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->id, "ba033ac4401106a3b513bc9d639eee123ad78ca3616b921167cd74b20e25ed39");
  EXPECT_EQ(info->name, "mesos-3d3c1e72-6c1a-4a4b-9a7e-2f1c6b0e8d11");
  EXPECT_TRUE(info->running);
  EXPECT_EQ(info->pid, 1234);
  EXPECT_EQ(info->network_mode, NetworkMode::kBridge);
  ASSERT_EQ(info->ports.size(), 1u);
  EXPECT_EQ(info->ports[0], (ContainerPort{8080, "tcp", "0.0.0.0", 31045}));
  EXPECT_EQ(info->addresses, std::vector<std::string>{"172.17.0.2"});
  EXPECT_EQ(info->mesos_task_id, "toggle.instance-802df2ae-3ad4-11e4-a400-56847afe9799._app.1");
  EXPECT_EQ(info->marathon_app_id, "/toggle");
  EXPECT_EQ(info->task_ports, std::vector<std::uint16_t>{31045});
}

TEST(DockerApi, ParsesTheMesosHostContainer) {
  auto info = parse_container_inspect(fixture("container-inspect.mesos-host.derived.json"));
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->network_mode, NetworkMode::kHost);
  EXPECT_TRUE(info->addresses.empty());
  EXPECT_EQ(info->task_ports, std::vector<std::uint16_t>{31045});
}

TEST(DockerApi, ParsesTheUpstreamInspectExample) {
  auto info = parse_container_inspect(fixture("container-inspect.response.json"));
  ASSERT_TRUE(info) << info.error().message();
  // The upstream example says Running with Pid 0; the parser reports what it says and
  // the tracker refuses to resolve a namespace from pid 0.
  EXPECT_EQ(info->pid, 0);
  EXPECT_TRUE(info->mesos_task_id.empty());
  // Labels carry the drain's per-app overrides (skopos.stop-grace, ...).
  const std::map<std::string, std::string> labels{
      {"com.example.vendor", "Acme"}, {"com.example.license", "GPL"}, {"com.example.version", "1.0"}};
  EXPECT_EQ(info->labels, labels);
}

TEST(DockerApi, ParsesTheContainerList) {
  auto list = parse_container_list(fixture("containers-json.response.json"));
  ASSERT_TRUE(list) << list.error().message();
  ASSERT_GE(list->size(), 1u);
  EXPECT_EQ((*list)[0].id, "8dfafdbc3a40");
  EXPECT_EQ((*list)[0].name, "boring_feynman");
  EXPECT_EQ((*list)[0].state, "exited") << "states are compared in lower case";
}

TEST(DockerApi, ParsesEveryEventOfTheUpstreamStream) {
  // The fixture wraps the stream in an array; on the wire each object is one line.
  simdjson::dom::parser parser;
  simdjson::dom::array stream;
  ASSERT_EQ(parser.parse(simdjson::padded_string(fixture("events.stream.json"))).get(stream), simdjson::SUCCESS);
  int containers = 0;
  int parsed = 0;
  for (simdjson::dom::element element : stream) {
    const std::string line = simdjson::minify(element);
    auto event = parse_docker_event(line);
    ASSERT_TRUE(event) << event.error().message() << " in " << line;
    ++parsed;
    if (event->type == "container") ++containers;
  }
  EXPECT_GT(parsed, 5);
  EXPECT_GT(containers, 3);
  auto create = parse_docker_event(
      R"({"Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"name":"web"}},"time":1,"timeNano":1461943101381709551})");
  ASSERT_TRUE(create);
  EXPECT_EQ(create->action, "start");
  EXPECT_EQ(create->id, "abc");
  EXPECT_EQ(create->name, "web");
  EXPECT_EQ(create->time_nano, 1461943101381709551);
}

TEST(DockerApi, BrokenDocumentsAreErrorsThatNameTheField) {
  auto truncated = parse_container_inspect(R"({"Id": "abc", "State": {"Running": tr)");
  ASSERT_FALSE(truncated);
  EXPECT_NE(truncated.error().message().find("inspect"), std::string::npos);

  auto bad_pid = parse_container_inspect(R"({"Id":"abc","State":{"Running":true,"Pid":"12"},"HostConfig":{}})");
  ASSERT_FALSE(bad_pid);
  EXPECT_NE(bad_pid.error().message().find("State.Pid"), std::string::npos) << bad_pid.error().message();

  auto bad_port = parse_container_inspect(
      R"({"Id":"abc","State":{"Running":true,"Pid":12},"HostConfig":{"NetworkMode":"bridge"},)"
      R"("NetworkSettings":{"Ports":{"80/tcp":[{"HostIp":"","HostPort":"99999"}]}}})");
  ASSERT_FALSE(bad_port);
  EXPECT_NE(bad_port.error().message().find("HostPort"), std::string::npos) << bad_port.error().message();

  EXPECT_FALSE(parse_container_list(R"({"not":"an array"})"));
  EXPECT_FALSE(parse_container_list(R"([{"Names":["/x"]}])")) << "an entry without Id";
  EXPECT_FALSE(parse_docker_event("[]"));
  EXPECT_FALSE(parse_docker_event(R"({"Type":"container"})")) << "no action";
}

TEST(DockerApi, ErrorBodiesBecomeMessages) {
  EXPECT_EQ(parse_docker_error(fixture("error-404-no-such-container.response.json")),
            "No such container: c2ada9df5af8");
  EXPECT_EQ(parse_docker_error("page not found\n"), "page not found");
}

TEST(DockerApi, ExposedOnlyAndUserNetworksAreBridgeMode) {
  auto info = parse_container_inspect(
      R"({"Id":"abc","Name":"/web","State":{"Running":true,"Pid":42},"HostConfig":{"NetworkMode":"mynet"},)"
      R"("Config":{"ExposedPorts":{"9000/tcp":{}},"Env":["PORT0=31000","PORT1=31001","PORTS=31000,31001"]},)"
      R"("NetworkSettings":{"Ports":{"8080/tcp":null},"Networks":{"mynet":{"IPAddress":"10.88.0.5"}}}})");
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->network_mode, NetworkMode::kBridge);
  ASSERT_EQ(info->ports.size(), 2u);
  EXPECT_EQ(info->ports[0], (ContainerPort{8080, "tcp", "", 0}));
  EXPECT_EQ(info->ports[1], (ContainerPort{9000, "tcp", "", 0}));
  EXPECT_EQ(info->task_ports, (std::vector<std::uint16_t>{31000, 31001}));
  EXPECT_EQ(info->addresses, std::vector<std::string>{"10.88.0.5"});
}

}  // namespace
}  // namespace skopos
