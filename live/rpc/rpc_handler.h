// The common shape of the daemons' gRPC callback handlers, written once (STYLE rule 13): check
// the cluster token, validate on the gRPC thread, then run the part that touches daemon state on
// the EventLoop that owns it and finish the call with that part's status.
//
//   grpc::ServerUnaryReactor* GetThing(ctx, const Req* req, Reply* reply) override {
//     return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
//       ...fill *reply on the loop...
//       return grpc::Status::OK;
//     });
//   }
//
// The helpers keep the handlers' behaviour: a bad token is refused with CheckToken's
// UNAUTHENTICATED before anything else runs, nothing blocks a gRPC thread, and the loop half runs
// on the loop in post order. As before, a loop half that the loop drops (posted after Stop) leaves
// its call unanswered until the server shuts down.
//
// Handlers whose call outlives the loop half (a lease waits in a queue, a stream is fed later)
// keep their own shape: these helpers finish the call as soon as the loop half returns.
//
// Thread safety: every function here is called on a gRPC thread, once per call.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <string>
#include <utility>
#include <variant>

#include "live/rpc/event_loop.h"
#include "live/rpc/rpc_util.h"

namespace orrery::live {

// The loop half of a unary handler: runs on the loop that owns the state, fills the reply and
// returns the call's status. It may read the request and the reply (both live until Finish).
using LoopHalf = std::function<grpc::Status()>;

// What a handler's validating half returns: a refusal (a non-OK status, sent at once) or the
// loop half to post.
using Validated = std::variant<grpc::Status, LoopHalf>;

// Checks the token, then runs `fn` on the gRPC thread and finishes the call with its status.
// REQUIRES: `fn` does not block and touches no loop-owned state (a lock-guarded hub, an atomic).
template <typename Fn>
grpc::ServerUnaryReactor* AnswerNow(grpc::CallbackServerContext* ctx, const std::string& token,
                                    Fn&& fn) {
  auto* r = ctx->DefaultReactor();
  grpc::Status s = CheckToken(*ctx, token);
  r->Finish(s.ok() ? std::forward<Fn>(fn)() : s);
  return r;
}

// Checks the token, then posts `fn` (a LoopHalf) to `loop`; the call finishes with fn's status.
template <typename Fn>
grpc::ServerUnaryReactor* AnswerOnLoop(grpc::CallbackServerContext* ctx, const std::string& token,
                                       EventLoop& loop, Fn fn) {
  auto* r = ctx->DefaultReactor();
  if (grpc::Status s = CheckToken(*ctx, token); !s.ok()) {
    r->Finish(s);
    return r;
  }
  loop.Post([r, fn = std::move(fn)]() mutable { r->Finish(fn()); });
  return r;
}

// Checks the token, then runs `validate` on the gRPC thread. If it returns a status the call
// finishes with it at once (REQUIRES: not OK); if it returns a LoopHalf, that is posted to
// `loop` and the call finishes with its status. The LoopHalf carries what validation produced.
template <typename Validate>
grpc::ServerUnaryReactor* ValidateThenAnswerOnLoop(grpc::CallbackServerContext* ctx,
                                                   const std::string& token, EventLoop& loop,
                                                   Validate&& validate) {
  auto* r = ctx->DefaultReactor();
  if (grpc::Status s = CheckToken(*ctx, token); !s.ok()) {
    r->Finish(s);
    return r;
  }
  Validated v = std::forward<Validate>(validate)();
  if (const auto* refusal = std::get_if<grpc::Status>(&v)) {
    r->Finish(*refusal);
    return r;
  }
  loop.Post([r, half = std::get<LoopHalf>(std::move(v))] { r->Finish(half()); });
  return r;
}

// For server-streaming handlers: closes `w` with CheckToken's status if the call lacks the token.
// Returns true if it did (the handler then returns `w` without doing anything else).
template <typename Msg>
bool RefuseWithoutToken(const grpc::ServerContextBase& ctx, const std::string& token,
                        StreamWriter<Msg>& w) {
  grpc::Status s = CheckToken(ctx, token);
  if (s.ok()) return false;
  w.Close(std::move(s));
  return true;
}

// A server-streaming reactor that finishes at once with `status`, for a handler that refuses a
// call before it has a writer of its own. gRPC keeps it alive until the call is done.
template <typename Msg>
grpc::ServerWriteReactor<Msg>* ClosedStream(grpc::Status status) {
  auto w = StreamWriter<Msg>::Create(/*keep_latest_only=*/false);
  w->Close(std::move(status));
  return w.get();
}

}  // namespace orrery::live
