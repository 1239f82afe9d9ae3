// Fuzzes the ttrpc frame decoder (shim/ttrpc/frame.h) as the shim's server
// and client feed it: containerd's bytes, cut into arbitrary reads. The
// first input byte picks the read size, so a header split over two reads and
// an oversized frame skipped across reads are both reached.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "shim/ttrpc/frame.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t chunk = 1 + data[0] % 64;
  absl::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  cloak::ttrpc::FrameDecoder decoder;
  while (!input.empty()) {
    const size_t n = std::min(chunk, input.size());
    decoder.Append(input.substr(0, n));
    input.remove_prefix(n);
    for (;;) {
      auto next = decoder.Next();
      if (!next.ok()) return 0;  // unrecoverable: the connection is dropped
      if (!next->has_value()) break;
      const cloak::ttrpc::Frame& frame = **next;
      if (frame.payload.size() > cloak::ttrpc::kMaxMessageSize) __builtin_trap();
      if (frame.oversized_length != 0 && !frame.payload.empty()) __builtin_trap();
      // A decoded frame re-encodes (the server echoes stream ids this way).
      if (frame.oversized_length == 0) {
        auto encoded = cloak::ttrpc::EncodeFrame(frame.stream_id, frame.type, frame.flags,
                                                 frame.payload);
        if (!encoded.ok()) __builtin_trap();
      }
    }
  }
  (void)decoder.InFrame();
  return 0;
}
