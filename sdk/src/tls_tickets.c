/*
 * Session tickets sealed with the ring's keys (tls_tickets.h): OpenSSL 3's
 * SSL_CTX_set_tlsext_ticket_key_evp_cb, AES-256-CBC plus HMAC-SHA256 under a 16-byte key
 * name, as RFC 5077 suggests and as HAProxy and nginx do with their shared ticket key files.
 * A ticket under an unknown key (rotated out, or from a store this server does not share)
 * costs a full handshake, never a failed one; one under a live key that no longer encrypts
 * is renewed. Runs on the thread doing the handshake; takes only the ring's mutex.
 */
#include "tls_tickets.h"

#include "ll.h"
#include "net.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <string.h>

/* The key's HMAC half as the MAC context's key (OpenSSL created it as HMAC). */
static int set_hmac_key(EVP_MAC_CTX *hctx, ll_ticket_key *k)
{
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k->hmac, sizeof(k->hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(hctx, params);
}

/* A new ticket: name it, draw its IV, and set up its cipher and MAC. 1, or 0 for no ticket. */
static int seal(ll_ticket_ring *ring, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx)
{
    ll_ticket_key k;
    if (!ll_tk_ring_encrypt_key(ring, ll_wall_ms(), &k)) {
        return 0;
    }
    const EVP_CIPHER *aes = EVP_aes_256_cbc();
    int ok = RAND_bytes(iv, EVP_CIPHER_get_iv_length(aes)) == 1 &&
             EVP_EncryptInit_ex(cctx, aes, NULL, k.aes, iv) == 1 && set_hmac_key(hctx, &k) == 1;
    memcpy(name, k.name, LL_TK_NAME_LEN);
    OPENSSL_cleanse(&k, sizeof(k));
    return ok ? 1 : 0;
}

/* A ticket offered by a client: 1 (or 2: renew it) with the cipher and MAC of the key it
 * names, 0 (a full handshake) if that key is not held. */
static int open_ticket(ll_ticket_ring *ring, const unsigned char *name, const unsigned char *iv, EVP_CIPHER_CTX *cctx,
                       EVP_MAC_CTX *hctx)
{
    ll_ticket_key k;
    bool renew = false;
    if (!ll_tk_ring_find(ring, name, ll_wall_ms(), &k, &renew)) {
        return 0;
    }
    int ok = EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1 && set_hmac_key(hctx, &k) == 1;
    OPENSSL_cleanse(&k, sizeof(k));
    if (!ok) {
        return 0;
    }
    return renew ? 2 : 1;
}

static int ticket_key_cb(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx,
                         int enc)
{
    ll_ticket_ring *ring = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    return enc ? seal(ring, name, iv, cctx, hctx) : open_ticket(ring, name, iv, cctx, hctx);
}

int ll_tls_tickets_install(SSL_CTX *c, ll_ticket_ring *ring)
{
    if (!SSL_CTX_set_app_data(c, ring) || SSL_CTX_set_tlsext_ticket_key_evp_cb(c, ticket_key_cb) != 1) {
        return SDK_ETLS;
    }
    return 0;
}
