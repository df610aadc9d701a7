/* lifeline-server: the liveness view as JSON (stderr lines and the /sessions endpoint). */
#ifndef LIFELINE_SERVER_JSON_H
#define LIFELINE_SERVER_JSON_H

#include <lifeline/server.h>

#include <stdio.h>

/* s as a JSON string: quotes, backslashes and control characters escaped. */
void json_string(FILE *out, const char *s);
/* One session of the liveness view as a JSON object. */
void json_session(FILE *out, const sdk_session_info *s);

#endif
