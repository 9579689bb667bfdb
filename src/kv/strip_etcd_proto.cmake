# Run as: cmake -DIN=<etcd .proto> -DOUT=<stripped .proto> -P strip_etcd_proto.cmake
#
# etcd's protos use gogoproto and google.api.http annotations that protoc can compile only with
# those extra .proto files on the include path. Neither changes the wire format or the gRPC
# method paths, so we drop them: the two imports, every `option (gogoproto.…)` line and every
# multi-line `option (google.api.http) = { … };` block (with its nested `additional_bindings`). Everything else is kept byte for byte.
if(NOT IN OR NOT OUT)
  message(FATAL_ERROR "strip_etcd_proto.cmake: pass -DIN=... -DOUT=...")
endif()
file(READ "${IN}" content)
string(REGEX REPLACE "import \"gogoproto/gogo.proto\";" "" content "${content}")
string(REGEX REPLACE "import \"google/api/annotations.proto\";" "" content "${content}")
string(REGEX REPLACE "option \\(gogoproto\\.[^;]*;" "" content "${content}")
# The blocks nest one level deep (`additional_bindings { … }`).
string(REGEX REPLACE "option \\(google\\.api\\.http\\) = {([^{}]*{[^{}]*})*[^{}]*};" "" content
       "${content}")
# Anything left over means etcd changed its annotations and this script needs an update.
string(FIND "${content}" "gogoproto" gogo_left)
string(FIND "${content}" "google.api" http_left)
if(NOT gogo_left EQUAL -1 OR NOT http_left EQUAL -1)
  message(FATAL_ERROR "strip_etcd_proto.cmake: unstripped annotation left in ${IN}")
endif()
file(WRITE "${OUT}.tmp" "${content}")
file(RENAME "${OUT}.tmp" "${OUT}")
