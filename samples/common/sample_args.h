/* Command-line helpers shared by the C samples (not part of the Lifeline API). */
#ifndef SAMPLE_ARGS_H
#define SAMPLE_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A decimal number in [0, max]; false for anything else (sign, junk, overflow). */
bool sample_parse_u64(const char *s, uint64_t max, uint64_t *out);

/* "host:port" or "[v6]:port" (sdk_parse_address) with port 1..65535; host copied into host[host_size]. */
bool sample_parse_target(const char *s, char *host, size_t host_size, uint16_t *port);

#endif
