#include "balsad/decode_error_interceptor.h"

namespace balsa::balsad {

namespace {

using grpc::experimental::InterceptionHookPoints;

class DecodeErrorInterceptor final : public grpc::experimental::Interceptor {
 public:
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() == nullptr) {
      decode_failed_ = true;
    }
    if (decode_failed_ && methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status st = methods->GetSendStatus();
      if (st.error_code() == grpc::StatusCode::UNIMPLEMENTED && st.error_message().empty())
        methods->ModifySendStatus({grpc::StatusCode::INTERNAL, kUnmarshalError});
    }
    methods->Proceed();
  }

 private:
  bool decode_failed_ = false;
};

class Factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    // Only unary and server-streaming calls decode one request before the handler runs.
    const auto type = info->type();
    if (type != grpc::experimental::ServerRpcInfo::Type::UNARY &&
        type != grpc::experimental::ServerRpcInfo::Type::SERVER_STREAMING)
      return nullptr;
    return new DecodeErrorInterceptor;
  }
};

}  // namespace

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> decode_error_interceptors() {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> v;
  v.push_back(std::make_unique<Factory>());
  return v;
}

}  // namespace balsa::balsad
