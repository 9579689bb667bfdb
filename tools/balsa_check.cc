// balsa-check: checks a recorded key-value history (JSON lines) for linearizability with the
// project's checker (src/sim/linearizability.h) and prints the first violation.
//
// One operation per line:
//   {"client":3,"kind":"put","key":"k1","value":"c3-7","call":1200,"ret":1850}
//   {"client":3,"kind":"get","key":"k1","got":null,"call":1900,"ret":2400}
//   {"client":3,"kind":"cas","key":"k1","expect":"c3-7","value":"c3-8","ok":true,"call":..,"ret":..}
//   {"client":3,"kind":"delete","key":"k1","call":..,"ret":null}
// "kind" is put, get, delete or cas; times are integers on one clock (nanoseconds, say);
// "ret": null marks an operation whose outcome the client never learned (it may take effect at
// any instant after its call, or never). "got": null / "expect": null mean the key is absent.
// Other fields are ignored. An operation that failed without effect must not be in the file.
//
// Exit status: 0 linearizable, 1 not linearizable, 2 bad input, 3 no verdict (search budget).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sim/linearizability.h"

using balsa::sim::KvOp;
using json = nlohmann::json;

namespace {

std::optional<std::string> opt_string(const json& j, const char* field) {
  const auto it = j.find(field);
  if (it == j.end() || it->is_null()) return std::nullopt;
  return it->get<std::string>();
}

KvOp parse_op(const json& j) {
  KvOp op;
  const std::string kind = j.at("kind").get<std::string>();
  if (kind == "put") op.kind = KvOp::Kind::kPut;
  else if (kind == "get") op.kind = KvOp::Kind::kGet;
  else if (kind == "delete") op.kind = KvOp::Kind::kDelete;
  else if (kind == "cas") op.kind = KvOp::Kind::kCas;
  else throw std::invalid_argument("unknown kind \"" + kind + "\"");
  op.client = j.value("client", 0);
  op.key = j.at("key").get<std::string>();
  op.call = j.at("call").get<uint64_t>();
  const json& ret = j.at("ret");
  op.ret = ret.is_null() ? KvOp::kNever : ret.get<uint64_t>();
  if (!op.indeterminate() && op.ret < op.call) throw std::invalid_argument("ret before call");
  if (op.kind == KvOp::Kind::kPut || op.kind == KvOp::Kind::kCas) op.value = j.at("value").get<std::string>();
  if (op.kind == KvOp::Kind::kCas) {
    if (!j.contains("expect")) throw std::invalid_argument("cas without \"expect\"");
    op.expect = opt_string(j, "expect");
    if (!op.indeterminate()) op.cas_ok = j.at("ok").get<bool>();
  }
  if (op.kind == KvOp::Kind::kGet && !op.indeterminate()) {
    if (!j.contains("got")) throw std::invalid_argument("get without \"got\"");
    op.got = opt_string(j, "got");
  }
  return op;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path;
  uint64_t max_steps = 20'000'000;
  bool quiet = false;
  CLI::App app{"balsa-check: is a recorded key-value history (JSON lines) linearizable?"};
  app.add_option("history", path, "History file, one operation per line")->required();
  app.add_option("--max-steps", max_steps, "Search budget per key")->capture_default_str();
  app.add_flag("--quiet", quiet, "Print only the verdict line");
  CLI11_PARSE(app, argc, argv);

  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "balsa-check: cannot open %s\n", path.c_str());
    return 2;
  }
  std::vector<KvOp> history;
  uint64_t line_no = 0, indeterminate = 0;
  std::vector<uint64_t> ok_rets;
  std::string line;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      history.push_back(parse_op(json::parse(line)));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "balsa-check: %s:%llu: %s\n", path.c_str(), static_cast<unsigned long long>(line_no),
                   e.what());
      return 2;
    }
    if (history.back().indeterminate()) ++indeterminate;
    else ok_rets.push_back(history.back().ret);
  }

  // Longest stretch with no operation completing: the clients' view of unavailability.
  std::sort(ok_rets.begin(), ok_rets.end());
  uint64_t gap = 0, gap_at = 0;
  for (size_t i = 1; i < ok_rets.size(); ++i)
    if (ok_rets[i] - ok_rets[i - 1] > gap) {
      gap = ok_rets[i] - ok_rets[i - 1];
      gap_at = ok_rets[i - 1];
    }

  const balsa::sim::LinearizabilityResult r = balsa::sim::check_linearizable(history, max_steps);
  const char* verdict = r.ok ? "linearizable" : r.exhausted ? "no verdict (search budget exhausted)" : "NOT linearizable";
  std::printf("%s: %llu ops (%llu indeterminate) on %llu keys, %llu search steps; longest time with no op "
              "completing: %llu (ending after %llu)\n",
              verdict, static_cast<unsigned long long>(history.size()), static_cast<unsigned long long>(indeterminate),
              static_cast<unsigned long long>(r.keys), static_cast<unsigned long long>(r.steps),
              static_cast<unsigned long long>(gap), static_cast<unsigned long long>(gap_at));
  if (!r.ok && !quiet) std::printf("first violation on key %s:\n%s", r.key.c_str(), r.explanation.c_str());
  if (r.ok) return 0;
  return r.exhausted ? 3 : 1;
}
