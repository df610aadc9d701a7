/*
 * A link-time stand-in for liblifeline.so.0 as release 0.1 shipped it: the same SONAME and
 * the same 32 function names, unversioned (0.1 had no version script). A program linked
 * against it records exactly what a program built against 0.1 records: "needs
 * liblifeline.so.0" and unversioned references. At run time it loads the current library
 * instead (tests/abi/CMakeLists.txt), which is the upgrade this test is about. The bodies
 * are never run.
 */
#define STUB(name)   \
    void name(void); \
    void name(void)  \
    {                \
    }
/* clang-format does not settle on one layout for this list. */
/* clang-format off */
#define LIFELINE_0_1_FUNCTIONS(X) \
    X(sdk_strerror) X(sdk_errname) X(sdk_state_name) X(sdk_config_init) X(sdk_message_free) \
    X(sdk_connect) X(sdk_send) X(sdk_send_typed) X(sdk_recv) X(sdk_flush) X(sdk_get_state) \
    X(sdk_get_stats) X(sdk_last_error) X(sdk_last_connect_error) X(sdk_close) X(sdk_destroy) \
    X(sdk_cause_name) X(sdk_server_config_init) X(sdk_server_start) X(sdk_server_port) \
    X(sdk_server_recv) X(sdk_server_send) X(sdk_server_send_typed) X(sdk_server_close_session) \
    X(sdk_server_sessions) X(sdk_server_stop) X(sdk_server_destroy) X(sdk_dev_certs) \
    X(sdk_send_pb) X(sdk_recv_pb) X(sdk_server_send_pb) X(sdk_server_recv_pb)
/* clang-format on */
LIFELINE_0_1_FUNCTIONS(STUB)
