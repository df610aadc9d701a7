/* Typed messages (pb.h): pack protobuf-c messages into sdk_send_typed, unpack what
 * sdk_recv returns. Public API calls only; no lock, no state of its own. */
#include <lifeline/pb.h>

#include <stdlib.h>
#include <string.h>

/* Messages up to this size are packed on the caller's stack; telemetry-sized messages are
 * far below it, and it is small enough for any thread's stack. */
#define PB_STACK_BYTES 1024

static bool is_message_descriptor(const ProtobufCMessageDescriptor *d)
{
    return d && d->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC && d->name;
}

/* pack: msg into stack if it fits, else into a malloc'd buffer; *buf is one or the other
 * (release() tells them apart). */
static sdk_err pack(const ProtobufCMessage *msg, uint8_t *stack, uint8_t **buf, size_t *len)
{
    if (!msg || !is_message_descriptor(msg->descriptor)) {
        return SDK_EINVAL;
    }
    size_t need = protobuf_c_message_get_packed_size(msg);
    uint8_t *b = stack;
    if (need > PB_STACK_BYTES) {
        b = malloc(need);
        if (!b) {
            return SDK_ENOMEM;
        }
    }
    *len = protobuf_c_message_pack(msg, b);
    *buf = b;
    return SDK_OK;
}

static void release(uint8_t *buf, const uint8_t *stack)
{
    if (buf != stack) {
        free(buf);
    }
}

/* deliver: m was received; unpack it into *out if it is of the expected type, else hand it
 * over in *raw. Either way the caller of the public function owns what is returned. */
static sdk_err deliver(const ProtobufCMessageDescriptor *expected, sdk_message *m, ProtobufCMessage **out,
                       sdk_message **raw)
{
    if (!m->type || strcmp(m->type, expected->name) != 0) {
        *raw = m;
        return SDK_ETYPE;
    }
    ProtobufCMessage *msg = protobuf_c_message_unpack(expected, NULL, m->len, m->data);
    if (!msg) {
        *raw = m;
        return SDK_EPROTO;
    }
    sdk_message_free(m);
    *out = msg;
    return SDK_OK;
}

/* recv_args_ok: clear the outputs, then say whether the call may receive at all. */
static bool recv_args_ok(const void *handle, const ProtobufCMessageDescriptor *expected, ProtobufCMessage **out,
                         sdk_message **raw)
{
    if (out) {
        *out = NULL;
    }
    if (raw) {
        *raw = NULL;
    }
    return handle && out && raw && is_message_descriptor(expected);
}

sdk_err sdk_send_pb(sdk_client *c, const ProtobufCMessage *msg, int timeout_ms)
{
    uint8_t stack[PB_STACK_BYTES];
    uint8_t *buf = NULL;
    size_t len = 0;
    if (!c) {
        return SDK_EINVAL;
    }
    sdk_err rc = pack(msg, stack, &buf, &len);
    if (rc != SDK_OK) {
        return rc;
    }
    rc = sdk_send_typed(c, msg->descriptor->name, buf, len, timeout_ms);
    release(buf, stack);
    return rc;
}

sdk_err sdk_recv_pb(sdk_client *c, const ProtobufCMessageDescriptor *expected, ProtobufCMessage **out,
                    sdk_message **raw, int timeout_ms)
{
    if (!recv_args_ok(c, expected, out, raw)) {
        return SDK_EINVAL;
    }
    sdk_message *m = NULL;
    sdk_err rc = sdk_recv(c, &m, timeout_ms);
    if (rc != SDK_OK) {
        return rc;
    }
    return deliver(expected, m, out, raw);
}

sdk_err sdk_server_send_pb(sdk_server *srv, uint64_t session, const ProtobufCMessage *msg, int timeout_ms)
{
    uint8_t stack[PB_STACK_BYTES];
    uint8_t *buf = NULL;
    size_t len = 0;
    if (!srv) {
        return SDK_EINVAL;
    }
    sdk_err rc = pack(msg, stack, &buf, &len);
    if (rc != SDK_OK) {
        return rc;
    }
    rc = sdk_server_send_typed(srv, session, msg->descriptor->name, buf, len, timeout_ms);
    release(buf, stack);
    return rc;
}

sdk_err sdk_server_recv_pb(sdk_server *srv, const ProtobufCMessageDescriptor *expected, ProtobufCMessage **out,
                           uint64_t *session, sdk_message **raw, int timeout_ms)
{
    if (session) {
        *session = 0;
    }
    if (!recv_args_ok(srv, expected, out, raw)) {
        return SDK_EINVAL;
    }
    sdk_message *m = NULL;
    sdk_err rc = sdk_server_recv(srv, &m, timeout_ms);
    if (rc != SDK_OK) {
        return rc;
    }
    if (session) {
        *session = m->session;
    }
    return deliver(expected, m, out, raw);
}
