// balsad's configuration resolution (balsad/config.h: resolve, parse_url): the input's lines
// become the flags (name, initial cluster, advertised URLs, token, state, timings). resolve must
// either throw std::invalid_argument naming the flag, or return a cluster that contains this
// member exactly once with distinct member ids.
#include <set>

#include "balsad/config.h"
#include "fuzz.h"

using namespace balsa;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto lines = fuzz::split(fuzz::as_view(data, size), "\n", 9);
  auto line = [&](size_t i) { return i < lines.size() ? std::string(lines[i]) : std::string(); };
  balsad::Config cfg;
  cfg.name = line(0);
  cfg.initial_cluster = line(1);
  cfg.initial_advertise_peer_urls = line(2).empty() ? cfg.initial_advertise_peer_urls : line(2);
  cfg.listen_client_urls = line(3).empty() ? cfg.listen_client_urls : line(3);
  cfg.advertise_client_urls = line(4).empty() ? cfg.advertise_client_urls : line(4);
  cfg.initial_cluster_token = line(5);
  cfg.initial_cluster_state = line(6).empty() ? "new" : line(6);
  const std::string t = line(7);
  cfg.heartbeat_interval_ms = t.size() > 0 ? static_cast<unsigned char>(t[0]) * 7 : 100;
  cfg.election_timeout_ms = t.size() > 1 ? static_cast<unsigned char>(t[1]) * 50 : 1000;
  try {
    for (const std::string& url : balsad::split(line(8), ',')) (void)balsad::parse_url(url);
  } catch (const std::invalid_argument&) {
  }
  balsad::Cluster c;
  try {
    c = balsad::resolve(cfg);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  FUZZ_CHECK(c.self < c.members.size());
  std::set<uint64_t> ids;
  for (const auto& m : c.members) ids.insert(m.member_id);
  FUZZ_CHECK(ids.size() == c.members.size());
  FUZZ_CHECK(c.member_id_of(c.me().node_id) == c.me().member_id);
  return 0;
}

std::vector<std::string> balsa_fuzz_seeds() {
  return {"a\na=http://127.0.0.1:2380,b=http://127.0.0.1:2381\nhttp://127.0.0.1:2380\nhttp://127.0.0.1:2379\n"
          "http://127.0.0.1:2379\ntok\nnew\n\x0e\x14\nhttp://[::1]:80,http://h:1",
          "m1\n\n\n\n\netcd-cluster\nexisting\n\n"};
}
