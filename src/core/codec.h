// Binary encoding of the core's values, shared by the WAL and the peer transport.
//
// Format: little-endian fixed 8-bit tags are not used; every field is written in declaration
// order as an unsigned LEB128 varint (integers, enums, bools) or as varint length + bytes
// (strings). Vectors are a varint count followed by the elements. Decoders never trust a
// length: every read is bounds-checked and a malformed buffer yields an error, not a crash.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/types.h"

namespace balsa::codec {

class Writer {
 public:
  void u64(uint64_t v);
  void bytes(std::string_view s);
  std::string& out() { return out_; }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool u64(uint64_t* v);
  bool bytes(std::string* s);
  bool done() const { return in_.empty(); }
  bool ok() const { return ok_; }

 private:
  std::string_view in_;
  bool ok_ = true;
};

void put(Writer& w, const Entry& e);
void put(Writer& w, const HardState& hs);
void put(Writer& w, const ConfState& cs);
void put(Writer& w, const ConfChange& cc);
void put(Writer& w, const ConfChangeSet& cs);
void put(Writer& w, const ConfEntry& ce);
void put(Writer& w, const SnapshotMetadata& m);
void put(Writer& w, const Message& m);

bool get(Reader& r, Entry* e);
bool get(Reader& r, HardState* hs);
bool get(Reader& r, ConfState* cs);
bool get(Reader& r, ConfChange* cc);
bool get(Reader& r, ConfChangeSet* cs);
bool get(Reader& r, ConfEntry* ce);
bool get(Reader& r, SnapshotMetadata* m);
bool get(Reader& r, Message* m);

// Whole-buffer helpers: decode fails if bytes remain after the value.
template <typename T>
std::string encode(const T& v) {
  Writer w;
  put(w, v);
  return w.take();
}
template <typename T>
std::optional<T> decode(std::string_view buf) {
  Reader r(buf);
  T v;
  if (!get(r, &v) || !r.done()) return std::nullopt;
  return v;
}

}  // namespace balsa::codec
