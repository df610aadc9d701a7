/*
 * Typed messages (pb.h) over real TLS: protobuf-c messages go out and come back whole; a
 * message of another type, or of the right type with bytes that do not unpack, is handed
 * back raw and intact instead of being lost; bad arguments receive nothing; the server side
 * learns the session and answers it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "typed_test.pb-c.h"

#include <lifeline/pb.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* pb.c packs messages up to this size on the stack, bigger ones in a malloc'd buffer. */
#define STACK_BYTES 1024

static sdk_client *connect_to(const ht_server *hs, uint32_t max_frame)
{
    sdk_config cfg;
    sdk_client *c = NULL;
    ht_client_config(&cfg, hs->port);
    if (max_frame) {
        cfg.max_frame = max_frame;
    }
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    return c;
}

static void close_client(sdk_client *c)
{
    assert_int_equal(sdk_close(c), SDK_OK);
    sdk_destroy(c);
}

/* A Note whose fields all depend on id, blob of blob_len bytes (pattern ht_fill(id)). */
typedef struct note_store {
    Typedtest__Note note;
    Typedtest__Inner inner;
    char text[64];
    int32_t values[3];
    uint8_t *blob;
} note_store;

static Typedtest__Note *make_note(note_store *s, uint64_t id, size_t blob_len)
{
    typedtest__note__init(&s->note);
    typedtest__inner__init(&s->inner);
    snprintf(s->text, sizeof s->text, "note %llu", (unsigned long long)id);
    s->values[0] = -(int32_t)id;
    s->values[1] = 0;
    s->values[2] = (int32_t)id * 1000;
    s->blob = malloc(blob_len ? blob_len : 1);
    assert_non_null(s->blob);
    ht_fill(s->blob, blob_len, (uint32_t)id);
    s->note.id = id;
    s->note.text = s->text;
    s->note.blob.data = s->blob;
    s->note.blob.len = blob_len;
    s->note.n_values = 3;
    s->note.values = s->values;
    s->inner.name = s->text;
    s->note.inner = &s->inner;
    return &s->note;
}

static void check_note(const ProtobufCMessage *got, uint64_t id, size_t blob_len)
{
    assert_non_null(got);
    assert_ptr_equal(got->descriptor, &typedtest__note__descriptor);
    const Typedtest__Note *n = (const Typedtest__Note *)got;
    char text[64];
    snprintf(text, sizeof text, "note %llu", (unsigned long long)id);
    assert_int_equal(n->id, id);
    assert_string_equal(n->text, text);
    assert_int_equal(n->blob.len, blob_len);
    assert_true(ht_check(n->blob.data, n->blob.len, (uint32_t)id));
    assert_int_equal(n->n_values, 3);
    assert_int_equal(n->values[0], -(int32_t)id);
    assert_int_equal(n->values[1], 0);
    assert_int_equal(n->values[2], (int32_t)id * 1000);
    assert_non_null(n->inner);
    assert_string_equal(n->inner->name, text);
}

static sdk_err send_note(sdk_client *c, uint64_t id, size_t blob_len)
{
    note_store s;
    sdk_err rc = sdk_send_pb(c, &make_note(&s, id, blob_len)->base, HT_WAIT_MS);
    free(s.blob);
    return rc;
}

static sdk_err send_other(sdk_client *c, const char *name)
{
    Typedtest__Other o = TYPEDTEST__OTHER__INIT;
    o.name = (char *)name;
    return sdk_send_pb(c, &o.base, HT_WAIT_MS);
}

/* The blob length that makes a Note of this id pack to exactly `packed` bytes. */
static size_t blob_for_packed(uint64_t id, size_t packed)
{
    note_store s;
    Typedtest__Note *n = make_note(&s, id, 0);
    size_t base = protobuf_c_message_get_packed_size(&n->base);
    free(s.blob);
    /* An empty blob packs to nothing; a blob of len L adds 1 tag byte, its length varint, L. */
    for (size_t len = 1; len < packed; len++) {
        size_t varint = len < 128 ? 1 : len < 16384 ? 2 : 3;
        if (base + 1 + varint + len == packed) {
            return len;
        }
    }
    fail_msg("no blob length packs a Note to %zu bytes", packed);
    return 0;
}

/* ---------------------------------------------------------------- client side */

/* Notes small, around the stack buffer's edge, and far beyond it, in order, field by field. */
static void test_roundtrip(void **state)
{
    ht_server *hs = *state;
    sdk_client *c = connect_to(hs, 0);
    size_t sizes[] = {0, 10, blob_for_packed(3, STACK_BYTES), blob_for_packed(4, STACK_BYTES + 1), 100000, 5};
    size_t n = sizeof sizes / sizeof sizes[0];
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(send_note(c, i + 1, sizes[i]), SDK_OK);
    }
    for (size_t i = 0; i < n; i++) {
        ProtobufCMessage *got = NULL;
        sdk_message *raw = (sdk_message *)1;
        assert_int_equal(sdk_recv_pb(c, &typedtest__note__descriptor, &got, &raw, HT_WAIT_MS), SDK_OK);
        assert_null(raw);
        check_note(got, i + 1, sizes[i]);
        protobuf_c_message_free_unpacked(got, NULL);
    }
    /* An empty message is a message too: zero bytes, still typed. */
    Typedtest__Other empty = TYPEDTEST__OTHER__INIT;
    assert_int_equal(sdk_send_pb(c, &empty.base, HT_WAIT_MS), SDK_OK);
    ProtobufCMessage *got = NULL;
    sdk_message *raw = NULL;
    assert_int_equal(sdk_recv_pb(c, &typedtest__other__descriptor, &got, &raw, HT_WAIT_MS), SDK_OK);
    assert_non_null(got);
    assert_string_equal(((Typedtest__Other *)got)->name, "");
    protobuf_c_message_free_unpacked(got, NULL);
    close_client(c);
}

/* Another type, or none: SDK_ETYPE, and the message comes back raw, unchanged. */
static void test_type_mismatch(void **state)
{
    ht_server *hs = *state;
    sdk_client *c = connect_to(hs, 0);
    assert_int_equal(send_other(c, "not a note"), SDK_OK);
    assert_int_equal(sdk_send(c, "plain", 5, HT_WAIT_MS), SDK_OK);
    assert_int_equal(send_note(c, 9, 3), SDK_OK);

    ProtobufCMessage *got = (ProtobufCMessage *)1;
    sdk_message *raw = NULL;
    assert_int_equal(sdk_recv_pb(c, &typedtest__note__descriptor, &got, &raw, HT_WAIT_MS), SDK_ETYPE);
    assert_null(got);
    assert_non_null(raw);
    assert_string_equal(raw->type, "typedtest.Other");
    assert_int_equal(raw->seq, 1);
    /* The raw bytes are the packed Other: the caller can still unpack them. */
    Typedtest__Other *other = typedtest__other__unpack(NULL, raw->len, raw->data);
    assert_non_null(other);
    assert_string_equal(other->name, "not a note");
    typedtest__other__free_unpacked(other, NULL);
    sdk_message_free(raw);

    assert_int_equal(sdk_recv_pb(c, &typedtest__note__descriptor, &got, &raw, HT_WAIT_MS), SDK_ETYPE);
    assert_null(got);
    assert_non_null(raw);
    assert_null(raw->type);
    assert_int_equal(raw->len, 5);
    assert_memory_equal(raw->data, "plain", 5);
    sdk_message_free(raw);

    /* Nothing was lost or reordered: the Note after them is next. */
    assert_int_equal(sdk_recv_pb(c, &typedtest__note__descriptor, &got, &raw, HT_WAIT_MS), SDK_OK);
    assert_null(raw);
    check_note(got, 9, 3);
    protobuf_c_message_free_unpacked(got, NULL);
    close_client(c);
}

/* The right type name on bytes that do not unpack: SDK_EPROTO with the raw message; the
 * stream goes on. */
static void test_malformed_payload(void **state)
{
    static const struct {
        const char *why;
        uint8_t bytes[4];
        size_t len;
    } garbage[] = {
        {"wire type 7 does not exist", {0x0f}, 1},
        {"varint cut short", {0x08, 0xff}, 2},
        {"string longer than what follows", {0x12, 0x05, 'a'}, 3},
        {"submessage that is not one", {0x2a, 0x01, 0x0f}, 3},
    };
    size_t n = sizeof garbage / sizeof garbage[0];
    ht_server *hs = *state;
    sdk_client *c = connect_to(hs, 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(sdk_send_typed(c, "typedtest.Note", garbage[i].bytes, garbage[i].len, HT_WAIT_MS), SDK_OK);
    }
    assert_int_equal(send_note(c, 5, 0), SDK_OK);
    for (size_t i = 0; i < n; i++) {
        ProtobufCMessage *got = (ProtobufCMessage *)1;
        sdk_message *raw = NULL;
        sdk_err rc = sdk_recv_pb(c, &typedtest__note__descriptor, &got, &raw, HT_WAIT_MS);
        if (rc != SDK_EPROTO) {
            fail_msg("%s: %s, expected SDK_EPROTO", garbage[i].why, sdk_errname(rc));
        }
        assert_null(got);
        assert_non_null(raw);
        assert_string_equal(raw->type, "typedtest.Note");
        assert_int_equal(raw->len, garbage[i].len);
        assert_memory_equal(raw->data, garbage[i].bytes, garbage[i].len);
        sdk_message_free(raw);
    }
    ProtobufCMessage *got = NULL;
    sdk_message *raw = NULL;
    assert_int_equal(sdk_recv_pb(c, &typedtest__note__descriptor, &got, &raw, HT_WAIT_MS), SDK_OK);
    check_note(got, 5, 0);
    protobuf_c_message_free_unpacked(got, NULL);
    close_client(c);
}

/* Bad arguments fail before anything is received, so no message is ever lost to them. */
static void test_bad_arguments(void **state)
{
    ht_server *hs = *state;
    sdk_client *c = connect_to(hs, 0);
    ProtobufCMessageDescriptor bad = typedtest__note__descriptor;
    bad.magic = 0;
    Typedtest__Other o = TYPEDTEST__OTHER__INIT;
    Typedtest__Other wrong = TYPEDTEST__OTHER__INIT;
    wrong.base.descriptor = &bad;
    ProtobufCMessage *got = (ProtobufCMessage *)1;
    sdk_message *raw = (sdk_message *)1;

    assert_int_equal(sdk_send_pb(NULL, &o.base, 0), SDK_EINVAL);
    assert_int_equal(sdk_send_pb(c, NULL, 0), SDK_EINVAL);
    assert_int_equal(sdk_send_pb(c, &wrong.base, 0), SDK_EINVAL);

    assert_int_equal(send_note(c, 1, 0), SDK_OK);
    assert_int_equal(sdk_flush(c, HT_WAIT_MS), SDK_OK);
    assert_int_equal(sdk_recv_pb(NULL, &typedtest__note__descriptor, &got, &raw, 0), SDK_EINVAL);
    assert_null(got);
    assert_null(raw);
    assert_int_equal(sdk_recv_pb(c, NULL, &got, &raw, HT_WAIT_MS), SDK_EINVAL);
    assert_int_equal(sdk_recv_pb(c, &bad, &got, &raw, HT_WAIT_MS), SDK_EINVAL);
    assert_int_equal(sdk_recv_pb(c, &typedtest__note__descriptor, NULL, &raw, HT_WAIT_MS), SDK_EINVAL);
    /* raw is required: with nowhere to put another type, receiving would lose it. */
    assert_int_equal(sdk_recv_pb(c, &typedtest__note__descriptor, &got, NULL, HT_WAIT_MS), SDK_EINVAL);
    assert_null(got);

    /* The Note is still there. */
    assert_int_equal(sdk_recv_pb(c, &typedtest__note__descriptor, &got, &raw, HT_WAIT_MS), SDK_OK);
    check_note(got, 1, 0);
    protobuf_c_message_free_unpacked(got, NULL);
    close_client(c);
}

/* Errors of the layer below come through unchanged, with nothing leaked (ASan checks). */
static void test_errors_pass_through(void **state)
{
    ht_server *hs = *state;
    sdk_client *c = connect_to(hs, 4096);
    ProtobufCMessage *got = (ProtobufCMessage *)1;
    sdk_message *raw = (sdk_message *)1;
    assert_int_equal(sdk_recv_pb(c, &typedtest__note__descriptor, &got, &raw, 0), SDK_ETIMEDOUT);
    assert_null(got);
    assert_null(raw);
    assert_int_equal(sdk_recv_pb(c, &typedtest__note__descriptor, &got, &raw, 50), SDK_ETIMEDOUT);
    /* Larger than max_frame, packed in a malloc'd buffer that must be freed. */
    assert_int_equal(send_note(c, 2, 10000), SDK_ETOOBIG);

    assert_int_equal(sdk_close(c), SDK_OK);
    assert_int_equal(send_note(c, 3, 0), SDK_ECLOSED);
    assert_int_equal(send_note(c, 4, 2000), SDK_ECLOSED); /* malloc path */
    assert_int_equal(sdk_recv_pb(c, &typedtest__note__descriptor, &got, &raw, 0), SDK_ECLOSED);
    assert_null(got);
    assert_null(raw);
    sdk_destroy(c);
}

/* ---------------------------------------------------------------- server side */

static int setup_plain_server(void **state)
{
    ht_server *hs = calloc(1, sizeof *hs);
    if (!hs || ht_server_start(hs, NULL, false) != SDK_OK) {
        free(hs);
        return -1;
    }
    *state = hs;
    return 0;
}

/* The server receives typed, learns the session, and answers it typed. */
static void test_server_roundtrip(void **state)
{
    ht_server *hs = *state;
    sdk_client *c = connect_to(hs, 0);
    assert_int_equal(send_note(c, 11, 20000), SDK_OK);

    ProtobufCMessage *got = NULL;
    sdk_message *raw = (sdk_message *)1;
    uint64_t session = 0;
    assert_int_equal(sdk_server_recv_pb(hs->srv, &typedtest__note__descriptor, &got, &session, &raw, HT_WAIT_MS),
                     SDK_OK);
    assert_null(raw);
    check_note(got, 11, 20000);
    protobuf_c_message_free_unpacked(got, NULL);

    sdk_session_info *info = NULL;
    size_t n = 0;
    assert_int_equal(sdk_server_sessions(hs->srv, &info, &n), SDK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(session, info[0].id);
    free(info);

    /* Answers, small and large, the other way. */
    Typedtest__Other reply = TYPEDTEST__OTHER__INIT;
    reply.name = "reply";
    assert_int_equal(sdk_server_send_pb(hs->srv, session, &reply.base, HT_WAIT_MS), SDK_OK);
    note_store s;
    assert_int_equal(sdk_server_send_pb(hs->srv, session, &make_note(&s, 12, 50000)->base, HT_WAIT_MS), SDK_OK);
    free(s.blob);
    assert_int_equal(sdk_recv_pb(c, &typedtest__other__descriptor, &got, &raw, HT_WAIT_MS), SDK_OK);
    assert_string_equal(((Typedtest__Other *)got)->name, "reply");
    protobuf_c_message_free_unpacked(got, NULL);
    assert_int_equal(sdk_recv_pb(c, &typedtest__note__descriptor, &got, &raw, HT_WAIT_MS), SDK_OK);
    check_note(got, 12, 50000);
    protobuf_c_message_free_unpacked(got, NULL);

    /* session may be NULL for a server that never answers. */
    assert_int_equal(send_note(c, 13, 0), SDK_OK);
    assert_int_equal(sdk_server_recv_pb(hs->srv, &typedtest__note__descriptor, &got, NULL, &raw, HT_WAIT_MS), SDK_OK);
    check_note(got, 13, 0);
    protobuf_c_message_free_unpacked(got, NULL);
    close_client(c);
}

/* Mismatch and malformed on the server: the raw message, and the session to answer. */
static void test_server_mismatch_and_malformed(void **state)
{
    ht_server *hs = *state;
    sdk_client *c = connect_to(hs, 0);
    static const uint8_t garbage[] = {0x0f, 0x00};
    assert_int_equal(send_other(c, "other"), SDK_OK);
    assert_int_equal(sdk_send_typed(c, "typedtest.Note", garbage, sizeof garbage, HT_WAIT_MS), SDK_OK);

    ProtobufCMessage *got = (ProtobufCMessage *)1;
    sdk_message *raw = NULL;
    uint64_t session = 0;
    assert_int_equal(sdk_server_recv_pb(hs->srv, &typedtest__note__descriptor, &got, &session, &raw, HT_WAIT_MS),
                     SDK_ETYPE);
    assert_null(got);
    assert_non_null(raw);
    assert_int_not_equal(session, 0);
    assert_int_equal(raw->session, session);
    assert_string_equal(raw->type, "typedtest.Other");
    sdk_message_free(raw);

    uint64_t session2 = 0;
    assert_int_equal(sdk_server_recv_pb(hs->srv, &typedtest__note__descriptor, &got, &session2, &raw, HT_WAIT_MS),
                     SDK_EPROTO);
    assert_null(got);
    assert_non_null(raw);
    assert_int_equal(session2, session);
    assert_int_equal(raw->len, sizeof garbage);
    assert_memory_equal(raw->data, garbage, sizeof garbage);
    sdk_message_free(raw);

    /* Nothing waiting; session is cleared when nothing was received. */
    assert_int_equal(sdk_server_recv_pb(hs->srv, &typedtest__note__descriptor, &got, &session2, &raw, 0),
                     SDK_ETIMEDOUT);
    assert_int_equal(session2, 0);
    assert_null(got);
    assert_null(raw);

    /* Argument and session errors. */
    Typedtest__Other o = TYPEDTEST__OTHER__INIT;
    assert_int_equal(sdk_server_send_pb(hs->srv, session ^ 0x5a5a5a5a5a5a5a5aULL, &o.base, 0), SDK_ENOTFOUND);
    assert_int_equal(sdk_server_send_pb(NULL, session, &o.base, 0), SDK_EINVAL);
    assert_int_equal(sdk_server_send_pb(hs->srv, session, NULL, 0), SDK_EINVAL);
    session2 = 7;
    assert_int_equal(sdk_server_recv_pb(NULL, &typedtest__note__descriptor, &got, &session2, &raw, 0), SDK_EINVAL);
    assert_int_equal(session2, 0);
    assert_int_equal(sdk_server_recv_pb(hs->srv, &typedtest__note__descriptor, &got, &session2, NULL, 0), SDK_EINVAL);
    assert_int_equal(sdk_server_recv_pb(hs->srv, NULL, &got, &session2, &raw, 0), SDK_EINVAL);

    /* After a stop: SDK_ECLOSED both ways. */
    ht_server_stop(hs);
    assert_int_equal(sdk_server_recv_pb(hs->srv, &typedtest__note__descriptor, &got, &session2, &raw, 0), SDK_ECLOSED);
    assert_int_equal(sdk_server_send_pb(hs->srv, session, &o.base, 0), SDK_ECLOSED);
    close_client(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test_setup_teardown(test_type_mismatch, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test_setup_teardown(test_malformed_payload, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test_setup_teardown(test_bad_arguments, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test_setup_teardown(test_errors_pass_through, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test_setup_teardown(test_server_roundtrip, setup_plain_server, ht_teardown_server),
        cmocka_unit_test_setup_teardown(test_server_mismatch_and_malformed, setup_plain_server, ht_teardown_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
