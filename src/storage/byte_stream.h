// Streaming byte interfaces for snapshots, which need not fit in memory. The snapshot store
// implements them over files; the state machine writes its image to a sink and restores from
// a source.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace balsa {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  // Appends bytes. Throws std::runtime_error (or a subclass) on an I/O failure.
  virtual void write(std::string_view bytes) = 0;
};

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to `n` bytes into `buf`; returns 0 only at the end of the stream.
  // Throws std::runtime_error on an I/O failure or a checksum mismatch.
  virtual size_t read(char* buf, size_t n) = 0;
};

// In-memory implementations, for tests and for small snapshots carried in a message.
class StringSink final : public ByteSink {
 public:
  void write(std::string_view bytes) override { out.append(bytes); }
  std::string out;
};

class StringSource final : public ByteSource {
 public:
  explicit StringSource(std::string_view in) : in_(in) {}
  size_t read(char* buf, size_t n) override {
    const size_t k = std::min(n, in_.size());
    in_.copy(buf, k);
    in_.remove_prefix(k);
    return k;
  }

 private:
  std::string_view in_;
};

}  // namespace balsa
