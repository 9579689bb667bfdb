// A request whose body does not decode as the method's protobuf message. gRPC C++'s callback
// server then answers UNIMPLEMENTED with an empty message (as if the method did not exist);
// etcd (grpc-go) answers INTERNAL "grpc: error unmarshalling request: ...", which is what
// clients and operators expect. This server interceptor sees that the call's request message
// is missing after the receive step (gRPC's sign of a failed decode) and rewrites the status.
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <vector>

namespace balsa::balsad {

inline constexpr const char* kUnmarshalError = "grpc: error unmarshalling request";

// The interceptor factories to give ServerBuilder::experimental().SetInterceptorCreators.
std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> decode_error_interceptors();

}  // namespace balsa::balsad
