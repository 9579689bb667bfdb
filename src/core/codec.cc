#include "core/codec.h"

namespace balsa::codec {

void Writer::u64(uint64_t v) {
  while (v >= 0x80) {
    out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out_.push_back(static_cast<char>(v));
}

void Writer::bytes(std::string_view s) {
  u64(s.size());
  out_.append(s);
}

bool Reader::u64(uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in_.empty()) return ok_ = false;
    const auto b = static_cast<uint8_t>(in_.front());
    in_.remove_prefix(1);
    if (shift == 63 && b > 1) return ok_ = false;  // overflows 64 bits
    result |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = result;
      return true;
    }
  }
  return ok_ = false;
}

bool Reader::bytes(std::string* s) {
  uint64_t n;
  if (!u64(&n) || n > in_.size()) return ok_ = false;
  s->assign(in_.substr(0, n));
  in_.remove_prefix(n);
  return true;
}

namespace {
template <typename Tag>
bool get_id(Reader& r, StrongU64<Tag>* v) { return r.u64(&v->value); }

template <typename E>
bool get_enum(Reader& r, E* e, uint64_t count) {
  uint64_t v;
  if (!r.u64(&v) || v >= count) return false;
  *e = static_cast<E>(v);
  return true;
}

bool get_bool(Reader& r, bool* b) {
  uint64_t v;
  if (!r.u64(&v) || v > 1) return false;
  *b = v != 0;
  return true;
}

void put_ids(Writer& w, const std::vector<NodeId>& ids) {
  w.u64(ids.size());
  for (NodeId id : ids) w.u64(id.value);
}

bool get_ids(Reader& r, std::vector<NodeId>* ids) {
  uint64_t n;
  if (!r.u64(&n) || n > (1u << 16)) return false;
  ids->resize(n);
  for (auto& id : *ids)
    if (!get_id(r, &id)) return false;
  return true;
}
}  // namespace

void put(Writer& w, const Entry& e) {
  w.u64(e.term.value);
  w.u64(e.index.value);
  w.u64(static_cast<uint64_t>(e.type));
  w.bytes(e.data);
}
bool get(Reader& r, Entry* e) {
  return get_id(r, &e->term) && get_id(r, &e->index) && get_enum(r, &e->type, 2) &&
         r.bytes(&e->data);
}

void put(Writer& w, const HardState& hs) {
  w.u64(hs.term.value);
  w.u64(hs.vote.value);
  w.u64(hs.commit.value);
}
bool get(Reader& r, HardState* hs) {
  return get_id(r, &hs->term) && get_id(r, &hs->vote) && get_id(r, &hs->commit);
}

void put(Writer& w, const ConfState& cs) {
  put_ids(w, cs.voters);
  put_ids(w, cs.learners);
  put_ids(w, cs.voters_outgoing);
  put_ids(w, cs.witnesses);
  w.u64(cs.auto_leave ? 1 : 0);
}
bool get(Reader& r, ConfState* cs) {
  return get_ids(r, &cs->voters) && get_ids(r, &cs->learners) && get_ids(r, &cs->voters_outgoing) &&
         get_ids(r, &cs->witnesses) && get_bool(r, &cs->auto_leave);
}

void put(Writer& w, const ConfChange& cc) {
  w.u64(static_cast<uint64_t>(cc.type));
  w.u64(cc.node.value);
}
bool get(Reader& r, ConfChange* cc) {
  return get_enum(r, &cc->type, kConfChangeTypeCount) && get_id(r, &cc->node);
}

void put(Writer& w, const ConfChangeSet& cs) {
  w.u64(cs.changes.size());
  for (const ConfChange& cc : cs.changes) put(w, cc);
  w.u64(cs.joint ? 1 : 0);
}
bool get(Reader& r, ConfChangeSet* cs) {
  uint64_t n;
  if (!r.u64(&n) || n > (1u << 16)) return false;
  cs->changes.resize(n);
  for (auto& cc : cs->changes)
    if (!get(r, &cc)) return false;
  return get_bool(r, &cs->joint);
}

void put(Writer& w, const ConfEntry& ce) {
  put(w, ce.request);
  put(w, ce.result);
}
bool get(Reader& r, ConfEntry* ce) { return get(r, &ce->request) && get(r, &ce->result); }

void put(Writer& w, const SnapshotMetadata& m) {
  w.u64(m.index.value);
  w.u64(m.term.value);
  put(w, m.conf);
}
bool get(Reader& r, SnapshotMetadata* m) {
  return get_id(r, &m->index) && get_id(r, &m->term) && get(r, &m->conf);
}

void put(Writer& w, const Message& m) {
  w.u64(static_cast<uint64_t>(m.type));
  w.u64(m.from.value);
  w.u64(m.to.value);
  w.u64(m.term.value);
  w.u64(m.index.value);
  w.u64(m.log_term.value);
  w.u64(m.entries.size());
  for (const Entry& e : m.entries) put(w, e);
  w.u64(m.commit.value);
  w.u64(m.reject ? 1 : 0);
  w.u64(m.reject_hint.value);
  put(w, m.snapshot.metadata);
  w.bytes(m.snapshot.data);
  w.bytes(m.context);
}
bool get(Reader& r, Message* m) {
  uint64_t n;
  if (!(get_enum(r, &m->type, kMessageTypeCount) && get_id(r, &m->from) && get_id(r, &m->to) &&
        get_id(r, &m->term) && get_id(r, &m->index) && get_id(r, &m->log_term) && r.u64(&n)))
    return false;
  // Each entry takes at least 4 bytes; a count larger than that allows is garbage.
  if (n > (1u << 24)) return false;
  m->entries.clear();
  m->entries.reserve(std::min<uint64_t>(n, 4096));
  for (uint64_t k = 0; k < n; ++k) {
    Entry e;
    if (!get(r, &e)) return false;
    m->entries.push_back(std::move(e));
  }
  return get_id(r, &m->commit) && get_bool(r, &m->reject) && get_id(r, &m->reject_hint) &&
         get(r, &m->snapshot.metadata) && r.bytes(&m->snapshot.data) && r.bytes(&m->context);
}

}  // namespace balsa::codec
