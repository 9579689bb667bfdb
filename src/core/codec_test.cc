// Codec: round trips of every type, and robustness against random and truncated input.
#include "core/codec.h"

#include <gtest/gtest.h>

#include <limits>

#include "core/rng.h"
#include "core/test_cluster.h"

namespace balsa::test {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

Message full_message(MessageType type) {
  Message m;
  m.type = type;
  m.from = N(3);
  m.to = N(kMax);
  m.term = T(1234567);
  m.index = I(kMax - 1);
  m.log_term = T(127);
  m.entries = {ent(1, 1, "a"), Entry{T(2), I(2), EntryType::kConfChange, std::string("\0\x01\xff", 3)},
               ent(kMax, kMax, "")};
  m.commit = I(128);
  m.reject = true;
  m.reject_hint = I(16384);
  m.snapshot.metadata = SnapshotMetadata{I(99), T(7), ConfState{ids(3), {N(4)}, {N(5), N(6)}}};
  m.snapshot.data = std::string(1000, 'z');
  m.context = "read-42";
  return m;
}

template <typename V>
void expect_round_trip(const V& v) {
  const std::string buf = codec::encode(v);
  auto back = codec::decode<V>(buf);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, v);
}

TEST(Codec, VarintRoundTrip) {
  for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{127}, uint64_t{128}, uint64_t{16383}, uint64_t{16384},
                     uint64_t{1} << 32, (uint64_t{1} << 63) - 1, uint64_t{1} << 63, kMax}) {
    codec::Writer w;
    w.u64(v);
    const std::string buf = w.take();
    codec::Reader r(buf);
    uint64_t got = 0;
    ASSERT_TRUE(r.u64(&got)) << v;
    EXPECT_EQ(got, v);
    EXPECT_TRUE(r.done());
    EXPECT_TRUE(r.ok());
  }
  // Sizes: 7 bits per byte.
  codec::Writer w;
  w.u64(127);
  EXPECT_EQ(w.out().size(), 1u);
  w.u64(128);
  EXPECT_EQ(w.out().size(), 3u);
  w.u64(kMax);
  EXPECT_EQ(w.out().size(), 13u);
}

TEST(Codec, MalformedVarints) {
  struct Case {
    std::string name;
    std::string buf;
  };
  const Case cases[] = {
      {"empty", ""},
      {"unterminated", "\x80"},
      {"unterminated long", std::string(9, '\xff')},
      {"more than 64 bits", std::string(9, '\xff') + "\x02"},
      {"eleven bytes", std::string(10, '\x80') + "\x00"},
  };
  for (const Case& tc : cases) {
    codec::Reader r(tc.buf);
    uint64_t v = 7;
    EXPECT_FALSE(r.u64(&v)) << tc.name;
    EXPECT_FALSE(r.ok()) << tc.name;
  }
  // The largest 10-byte varint that fits is accepted.
  const std::string max = std::string(9, '\xff') + "\x01";
  codec::Reader r(max);
  uint64_t v = 0;
  ASSERT_TRUE(r.u64(&v));
  EXPECT_EQ(v, kMax);
}

TEST(Codec, BytesRoundTripAndBadLength) {
  codec::Writer w;
  w.bytes(std::string("\0abc", 4));
  w.bytes("");
  const std::string buf = w.take();
  codec::Reader r(buf);
  std::string a, b;
  ASSERT_TRUE(r.bytes(&a));
  ASSERT_TRUE(r.bytes(&b));
  EXPECT_EQ(a, std::string("\0abc", 4));
  EXPECT_EQ(b, "");
  EXPECT_TRUE(r.done());
  // A length beyond the buffer is refused without reading past it.
  const std::string lying = "\x05" "ab";
  codec::Reader r2(lying);
  std::string s;
  EXPECT_FALSE(r2.bytes(&s));
  const std::string huge = std::string(9, '\xff') + "\x01";
  codec::Reader r3(huge);
  EXPECT_FALSE(r3.bytes(&s));
}

TEST(Codec, RoundTripEveryType) {
  expect_round_trip(Entry{});
  expect_round_trip(ent(5, 9, "payload"));
  expect_round_trip(Entry{T(kMax), I(kMax), EntryType::kConfChange, std::string(70000, '\x80')});
  expect_round_trip(HardState{});
  expect_round_trip(HardState{T(kMax), N(3), I(1u << 20)});
  expect_round_trip(ConfState{});
  expect_round_trip(ConfState{ids(5), {N(6), N(7)}, ids(3)});
  for (ConfChangeType t : {ConfChangeType::kAddVoter, ConfChangeType::kAddLearner, ConfChangeType::kRemoveNode})
    expect_round_trip(ConfChange{t, N(kMax)});
  expect_round_trip(SnapshotMetadata{});
  expect_round_trip(SnapshotMetadata{I(10), T(3), ConfState{ids(3), {}, ids(2)}});
  expect_round_trip(Message{});
  for (int t = 0; t < kMessageTypeCount; ++t) {
    SCOPED_TRACE(to_string(static_cast<MessageType>(t)));
    expect_round_trip(full_message(static_cast<MessageType>(t)));
  }
}

TEST(Codec, RefusesOutOfRangeEnumsAndBools) {
  {
    std::string buf = codec::encode(Message{});
    buf[0] = static_cast<char>(kMessageTypeCount);  // first field: the type
    EXPECT_FALSE(codec::decode<Message>(buf).has_value());
  }
  {
    std::string buf = codec::encode(ent(1, 1, ""));
    buf[2] = 2;  // term, index, then the entry type
    EXPECT_FALSE(codec::decode<Entry>(buf).has_value());
  }
  {
    std::string buf = codec::encode(ConfChange{});
    buf[0] = static_cast<char>(kConfChangeTypeCount);
    EXPECT_FALSE(codec::decode<ConfChange>(buf).has_value());
  }
  {
    Message m;
    std::string buf = codec::encode(m);
    // type from to term index log_term n_entries commit reject: the 9th single-byte field.
    ASSERT_EQ(buf[8], 0);
    buf[8] = 2;
    EXPECT_FALSE(codec::decode<Message>(buf).has_value());
  }
}

TEST(Codec, TruncatedAndTrailingBuffersAreRefused) {
  for (int t = 0; t < kMessageTypeCount; ++t) {
    const std::string buf = codec::encode(full_message(static_cast<MessageType>(t)));
    for (size_t n = 0; n < buf.size(); ++n)
      ASSERT_FALSE(codec::decode<Message>(std::string_view(buf).substr(0, n)).has_value()) << "prefix " << n;
    EXPECT_FALSE(codec::decode<Message>(buf + std::string(1, '\0')).has_value());
  }
  const std::string e = codec::encode(ent(3, 4, "data"));
  for (size_t n = 0; n < e.size(); ++n) EXPECT_FALSE(codec::decode<Entry>(e.substr(0, n)).has_value());
  const std::string hs = codec::encode(HardState{T(300), N(2), I(400)});
  for (size_t n = 0; n < hs.size(); ++n) EXPECT_FALSE(codec::decode<HardState>(hs.substr(0, n)).has_value());
}

TEST(Codec, HugeCountsAreRefusedWithoutHugeAllocations) {
  codec::Writer w;
  for (int k = 0; k < 6; ++k) w.u64(1);  // type .. log_term
  w.u64(uint64_t{1} << 40);              // entry count
  EXPECT_FALSE(codec::decode<Message>(w.take()).has_value());
  codec::Writer w2;
  w2.u64(uint64_t{1} << 30);  // voters count
  EXPECT_FALSE(codec::decode<ConfState>(w2.take()).has_value());
  codec::Writer w3;
  for (int k = 0; k < 6; ++k) w3.u64(1);
  w3.u64(1u << 24);  // plausible count, but the buffer ends
  EXPECT_FALSE(codec::decode<Message>(w3.take()).has_value());
}

// Decoding arbitrary bytes never crashes; whatever does decode re-encodes to a value that
// decodes to itself.
template <typename V>
void fuzz_one(std::string_view buf) {
  auto v = codec::decode<V>(buf);
  if (!v) return;
  auto again = codec::decode<V>(codec::encode(*v));
  ASSERT_TRUE(again.has_value());
  ASSERT_EQ(*again, *v);
}

TEST(Codec, RandomBuffersNeverCrash) {
  Rng rng(0xc0dec);
  int decoded = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string buf(rng.below(48), '\0');
    for (char& c : buf) {
      // Mostly small bytes, so that short varints and valid enums show up often.
      c = static_cast<char>(rng.chance(0.7) ? rng.below(4) : rng.below(256));
    }
    fuzz_one<Message>(buf);
    fuzz_one<Entry>(buf);
    fuzz_one<HardState>(buf);
    fuzz_one<ConfState>(buf);
    fuzz_one<ConfChange>(buf);
    fuzz_one<SnapshotMetadata>(buf);
    decoded += codec::decode<HardState>(buf).has_value();
  }
  EXPECT_GT(decoded, 0);  // the generator does reach valid encodings
}

TEST(Codec, MutatedMessagesNeverCrash) {
  Rng rng(77);
  int decoded = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    std::string buf = codec::encode(full_message(static_cast<MessageType>(rng.below(kMessageTypeCount))));
    const int flips = 1 + static_cast<int>(rng.below(4));
    for (int k = 0; k < flips; ++k) {
      switch (rng.below(3)) {
        case 0: buf[rng.below(buf.size())] = static_cast<char>(rng.below(256)); break;
        case 1: buf.erase(rng.below(buf.size()), 1); break;
        case 2: buf.insert(buf.begin() + static_cast<std::ptrdiff_t>(rng.below(buf.size())), static_cast<char>(rng.below(256))); break;
      }
    }
    fuzz_one<Message>(buf);
    decoded += codec::decode<Message>(buf).has_value();
  }
  EXPECT_GT(decoded, 0);
}

}  // namespace
}  // namespace balsa::test
