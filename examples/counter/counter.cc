// A replicated counter: three Balsa nodes in one process, each with its own log on disk.
#include <balsa/balsa.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <future>
#include <thread>

using namespace balsa;
using namespace std::chrono_literals;

struct Counter final : StateMachine {  // the state: one number; a command adds to it
  std::atomic<long> value{0}; std::atomic<uint64_t> applied{0};
  void apply(std::span<const Entry> entries, std::vector<std::string>* results) override {
    for (const Entry& e : entries) {  // also the leader's no-op and config entries: skip them
      if (e.type == EntryType::kNormal && !e.data.empty()) value += std::stol(e.data);
      applied = e.index.value;
      results->push_back(std::to_string(value));  // what propose() completes with
    }
  }
  LogIndex applied_index() const override { return LogIndex{applied}; }
  void save_snapshot(ByteSink& out) override { out.write(std::to_string(value)); }
  void restore_snapshot(ByteSource& in, LogIndex index) override {
    char buf[32];
    value = std::stol(std::string(buf, in.read(buf, sizeof buf)));
    applied = index.value;
  }
};

struct Member {  // one node: its log on disk, its state machine, its link to the others
  std::unique_ptr<DurableLog> log; Counter counter; std::unique_ptr<LoopbackTransport> link; std::unique_ptr<Node> node;
};

int main() {
  const auto root = std::filesystem::temp_directory_path() / ("balsa-counter-" + std::to_string(getpid()));
  PosixFileSystem fs;
  auto net = std::make_shared<LoopbackNetwork>();
  Member m[3];
  for (uint64_t id = 1; id <= 3; ++id) {
    Member& x = m[id - 1];
    x.log = DurableLog::open(fs, (root / std::to_string(id)).string());
    x.link = std::make_unique<LoopbackTransport>(net, NodeId{id});
    for (uint64_t peer = 1; peer <= 3; ++peer) if (peer != id) x.link->add_peer(NodeId{peer}, "");
    x.node = std::make_unique<Node>(NodeOptions{.id = NodeId{id}, .voters = {NodeId{1}, NodeId{2}, NodeId{3}}},
                                    *x.log, x.counter, *x.link);
    x.node->start();
  }
  for (int i = 1; i <= 10;) {  // any node takes a proposal: followers forward it to the leader
    std::promise<CommandResult> done;
    m[i % 3].node->propose(std::to_string(i), [&](CommandResult r) { done.set_value(std::move(r)); });
    CommandResult r = done.get_future().get();
    if (r.ok()) std::printf("add %2d -> %s\n", i++, r.value.c_str());
    else if (r.error == NodeError::kNoLeader) std::this_thread::sleep_for(50ms);  // not proposed: retry
    else return std::printf("add %d: %s\n", i, to_string(r.error)), 1;  // outcome unknown: stop
  }
  auto agree = [&] { return m[0].counter.value == 55 && m[1].counter.value == 55 && m[2].counter.value == 55; };
  for (int n = 0; n < 500 && !agree(); ++n) std::this_thread::sleep_for(10ms);  // followers apply a bit later
  std::printf(agree() ? "every node's counter is 55\n" : "the nodes disagree\n");
  for (auto& x : m) x.node->stop();
  std::filesystem::remove_all(root);
  return agree() ? 0 : 1;
}
