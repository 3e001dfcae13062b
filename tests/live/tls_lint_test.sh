#!/usr/bin/env bash
# Every gRPC channel and server of live/ and bench/ takes its credentials from the one pair of
# factories in live/rpc/rpc_util.cc (ClientCredentials/ServerCredentials/OpenChannel), so none can
# forget TLS (issue 17.3). Fails naming each other place that makes credentials or a channel.
set -u
root=${1:?usage: tls_lint_test.sh SOURCE_DIR}
hits=$(grep -rnE 'Insecure(Channel|Server)Credentials|Ssl(Server)?Credentials\(|grpc::(CreateChannel|CreateCustomChannel)\(|experimental::Tls(Server)?Credentials\(' \
         "$root/live" "$root/bench" --include='*.cc' --include='*.h' |
       grep -v "^$root/live/rpc/rpc_util.cc:")
if [ -n "$hits" ]; then
  echo "gRPC credentials or channels made outside live/rpc/rpc_util.cc (use OpenChannel /"
  echo "ServerCredentials there, so TLS applies):"
  echo "$hits"
  exit 1
fi
echo "ok: every gRPC channel and server in live/ and bench/ goes through live/rpc/rpc_util.cc"
