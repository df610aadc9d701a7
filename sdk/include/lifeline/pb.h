/*
 * Lifeline typed messages: send and receive protobuf-c messages over a client or a server.
 *
 * A thin layer over sdk_send_typed/sdk_recv and their server twins, in its own header so
 * that sdk.h needs no protobuf-c headers. Link the same library (liblifeline); the
 * application's messages come from its .proto files through protoc-c, for example with the
 * CMake function lifeline_add_proto() (see samples/README.md).
 *
 * Type names. A message travels labelled with its descriptor's full name, "package.Message"
 * (ProtobufCMessageDescriptor.name, the same string as DESCRIPTOR.full_name in Python), so a
 * receiver can tell what it holds before it unpacks anything.
 *
 * Receiving. The *_recv_pb calls take the next message whatever its type: messages are one
 * ordered stream, and receiving is what acknowledges a message, so one cannot be put back.
 * When its type is not the expected one (SDK_ETYPE) or its bytes do not unpack (SDK_EPROTO),
 * the raw message is handed to the caller instead of being dropped. A receiver that expects
 * several types switches on raw->type and unpacks with
 * protobuf_c_message_unpack(&pkg__other__descriptor, NULL, raw->len, raw->data).
 *
 * Memory. Sent messages are packed into a stack buffer when small, else into one
 * malloc'd buffer, and then copied into the send queue as with sdk_send. Unpacked messages
 * use protobuf-c's default allocator (malloc): free them with
 * protobuf_c_message_free_unpacked(msg, NULL).
 *
 * Timeouts, threads and errors follow sdk.h and server.h.
 */
#ifndef LIFELINE_PB_H
#define LIFELINE_PB_H

#include <lifeline/sdk.h>
#include <lifeline/server.h>

#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * sdk_send_pb: pack msg and queue it with sdk_send_typed(c, msg->descriptor->name, ...).
 * msg stays the caller's; the packed bytes are copied. Blocks, from any thread, exactly as
 * sdk_send (only while the queue is full, up to timeout_ms).
 * Errors: SDK_EINVAL (NULL client or message, or msg->descriptor is not a message
 * descriptor), SDK_ENOMEM (no buffer for a large message), and those of sdk_send_typed:
 * SDK_ETOOBIG, SDK_EQUEUEFULL, SDK_ECLOSED, SDK_ENOMEM.
 */
SDK_API sdk_err sdk_send_pb(sdk_client *c, const ProtobufCMessage *msg, int timeout_ms);

/*
 * sdk_recv_pb: take the next message from the server (sdk_recv, waiting up to timeout_ms)
 * and, if its type is expected->name, unpack it.
 * raw is required: without somewhere to put a message of another type, receiving it would
 * lose it. Any thread; each message goes to exactly one caller.
 * On SDK_OK *out is the unpacked message, owned by the caller
 * (protobuf_c_message_free_unpacked(*out, NULL)), and *raw is NULL: the received bytes are
 * already freed.
 * On SDK_ETYPE (the message carries another type name, or none) and SDK_EPROTO (the right
 * type name but bytes that do not unpack as expected, or no memory to unpack them) *out is
 * NULL and *raw is the message exactly as received, owned by the caller (sdk_message_free).
 * On every other error nothing was received, and *out and *raw (those given) are NULL.
 * Errors: SDK_EINVAL (NULL client, expected, out or raw, or expected is not a message
 * descriptor; nothing is received), SDK_ETIMEDOUT, SDK_ECLOSED, SDK_ETYPE, SDK_EPROTO.
 */
SDK_API sdk_err sdk_recv_pb(sdk_client *c, const ProtobufCMessageDescriptor *expected, ProtobufCMessage **out,
                            sdk_message **raw, int timeout_ms);

/*
 * sdk_server_send_pb: pack msg and queue it for one session with sdk_server_send_typed,
 * labelled msg->descriptor->name. msg stays the caller's. Blocks up to timeout_ms while the
 * session's queue is full. Any thread.
 * Errors: SDK_EINVAL, SDK_ENOMEM, and those of sdk_server_send_typed: SDK_ENOTFOUND,
 * SDK_ETOOBIG, SDK_EQUEUEFULL, SDK_ECLOSED.
 */
SDK_API sdk_err sdk_server_send_pb(sdk_server *srv, uint64_t session, const ProtobufCMessage *msg, int timeout_ms);

/*
 * sdk_server_recv_pb: sdk_recv_pb for the server: take the next message from any client
 * (sdk_server_recv, waiting up to timeout_ms) and unpack it if its type is expected->name.
 * *session receives the session it came from whenever a message was received (SDK_OK,
 * SDK_ETYPE, SDK_EPROTO), so that the caller can answer it; 0 otherwise. session may be NULL
 * for a caller that never answers. The client certificate subject (mTLS) is raw->peer on
 * mismatch; after SDK_OK ask sdk_server_sessions(), or use sdk_server_recv and unpack.
 * Ownership of *out and *raw, and the errors, are those of sdk_recv_pb (SDK_ECLOSED: the
 * server stopped). Any thread.
 */
SDK_API sdk_err sdk_server_recv_pb(sdk_server *srv, const ProtobufCMessageDescriptor *expected, ProtobufCMessage **out,
                                   uint64_t *session, sdk_message **raw, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
