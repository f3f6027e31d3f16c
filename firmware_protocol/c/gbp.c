/*
 * gbp.c - glutebridge wire protocol reference encoder (C99, no malloc, no stdio).
 * Layouts: firmware_protocol/packets.py.  All multi-byte fields are written
 * little-endian one byte at a time, so the code is independent of the MCU's
 * byte order; the CRC trailer alone is big-endian (see gbp_frame).
 */
#include "gbp.h"

#include <string.h>

/* float must be IEEE-754 binary32 for the scale field; refuse to build otherwise. */
typedef char gbp_float_must_be_32_bits[(sizeof(float) == 4) ? 1 : -1];

const char *gbp_strerror(int err)
{
    switch (err) {
    case GBP_ERR_BUFFER: return "output buffer too small";
    case GBP_ERR_RANGE: return "value does not fit its field";
    case GBP_ERR_TOO_LARGE: return "packet larger than GBP_MAX_PACKET_SIZE";
    case GBP_ERR_VALUE: return "invalid code or NULL data";
    case GBP_ERR_UTF8: return "string is not valid UTF-8";
    default: return err >= 0 ? "no error" : "unknown error";
    }
}

/* ---- CRC-16/CCITT-FALSE, bit by bit: no table, a few bytes of code for small MCUs ---- */

static uint16_t crc16_update(uint16_t crc, const uint8_t *data, size_t len)
{
    size_t i;
    int bit;
    for (i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint16_t)data[i] << 8);
        for (bit = 0; bit < 8; bit++)
            crc = (crc & 0x8000u) ? (uint16_t)(((unsigned)crc << 1) ^ 0x1021u)
                                  : (uint16_t)((unsigned)crc << 1);
    }
    return crc;
}

uint16_t gbp_crc16(const uint8_t *data, size_t len)
{
    return crc16_update(0xFFFFu, data, len);
}

/* ---- COBS ----
 * Encodes packet || crc without copying them together.  Like the Python
 * `cobs` package (and Cheshire & Baker), a group of 254 non-zero bytes that
 * ends exactly at the end of the input gets no extra trailing 0x01 group.
 */

typedef struct {
    uint8_t *out;
    size_t cap;
    size_t n;        /* bytes written */
    size_t code_at;  /* index of the current group's code byte */
    uint8_t code;    /* 1 + data bytes in the current group */
    size_t left;     /* input bytes still to come, for the end-of-input rule */
    int err;
} cobs_enc;

static void cobs_start(cobs_enc *e, uint8_t *out, size_t cap, size_t total)
{
    e->out = out;
    e->cap = cap;
    e->n = 1; /* slot for the first code byte */
    e->code_at = 0;
    e->code = 1;
    e->left = total;
    e->err = cap < 1;
}

static void cobs_feed(cobs_enc *e, const uint8_t *data, size_t len)
{
    size_t i;
    for (i = 0; i < len && !e->err; i++) {
        uint8_t b = data[i];
        e->left--;
        if (b != 0) {
            if (e->n >= e->cap) {
                e->err = 1;
                return;
            }
            e->out[e->n++] = b;
            e->code++;
        }
        if (b == 0 || (e->code == 0xFF && e->left > 0)) {
            /* close the group; open the next one (its code byte comes later) */
            if (e->n >= e->cap) {
                e->err = 1;
                return;
            }
            e->out[e->code_at] = e->code;
            e->code_at = e->n++;
            e->code = 1;
        }
    }
}

int gbp_frame(const uint8_t *packet, size_t len, uint8_t *out, size_t cap)
{
    cobs_enc e;
    uint16_t crc;
    uint8_t trailer[2];

    if (packet == NULL && len > 0)
        return GBP_ERR_VALUE;
    if (len > GBP_MAX_PACKET_SIZE)
        return GBP_ERR_TOO_LARGE; /* also keeps the int return value in range on 16-bit MCUs */
    if (out == NULL)
        return GBP_ERR_BUFFER;
    crc = gbp_crc16(packet, len);
    /* big-endian so that the CRC over packet || trailer is 0 (one-call check on the host) */
    trailer[0] = (uint8_t)(crc >> 8);
    trailer[1] = (uint8_t)(crc & 0xFFu);
    cobs_start(&e, out, cap, len + 2);
    if (len > 0)
        cobs_feed(&e, packet, len);
    cobs_feed(&e, trailer, 2);
    if (e.err || e.n >= cap)
        return GBP_ERR_BUFFER;
    out[e.code_at] = e.code;
    out[e.n++] = 0x00; /* delimiter */
    return (int)e.n;
}

/* ---- Little-endian writer with sticky error ---- */

typedef struct {
    uint8_t *p;
    size_t cap;
    size_t n;
    int err;
} writer;

static void w_init(writer *w, uint8_t *out, size_t cap)
{
    w->p = out;
    w->cap = out == NULL ? 0 : cap;
    w->n = 0;
    w->err = 0;
}

static void w_fail(writer *w, int err)
{
    if (!w->err)
        w->err = err;
}

static void w_u8(writer *w, uint8_t v)
{
    if (w->err)
        return;
    if (w->n >= GBP_MAX_PACKET_SIZE) {
        w_fail(w, GBP_ERR_TOO_LARGE);
        return;
    }
    if (w->n >= w->cap) {
        w_fail(w, GBP_ERR_BUFFER);
        return;
    }
    w->p[w->n++] = v;
}

static void w_u16(writer *w, uint16_t v)
{
    w_u8(w, (uint8_t)(v & 0xFFu));
    w_u8(w, (uint8_t)(v >> 8));
}

static void w_u32(writer *w, uint32_t v)
{
    w_u8(w, (uint8_t)(v & 0xFFu));
    w_u8(w, (uint8_t)((v >> 8) & 0xFFu));
    w_u8(w, (uint8_t)((v >> 16) & 0xFFu));
    w_u8(w, (uint8_t)(v >> 24));
}

static void w_f32(writer *w, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits); /* IEEE-754 bit pattern, written LE like any u32 */
    w_u32(w, bits);
}

static void w_header(writer *w, uint8_t type, uint8_t stream, uint16_t seq)
{
    w_u8(w, type);
    w_u8(w, stream);
    w_u16(w, seq);
}

/* Strict UTF-8 as Python decodes it: no overlongs, no surrogates, nothing above U+10FFFF. */
static int utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k, more;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            more = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            else if (c == 0xED)
                hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0)
                lo = 0x90; /* overlong */
            else if (c == 0xF4)
                hi = 0x8F; /* > U+10FFFF */
        } else
            return 0;
        if (n - i - 1 < more)
            return 0;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (k = 2; k <= more; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return 0;
        i += more + 1;
    }
    return 1;
}

/* str8: u8 length then the UTF-8 bytes. */
static void w_str8(writer *w, const char *text)
{
    size_t n = text == NULL ? 0 : strlen(text);
    if (n > 255) {
        w_fail(w, GBP_ERR_RANGE);
        return;
    }
    if (!utf8_valid((const uint8_t *)text, n)) {
        w_fail(w, GBP_ERR_UTF8);
        return;
    }
    w_u8(w, (uint8_t)n);
    if (n > 0 && !w->err) {
        if (w->n + n > GBP_MAX_PACKET_SIZE)
            w_fail(w, GBP_ERR_TOO_LARGE);
        else if (w->n + n > w->cap)
            w_fail(w, GBP_ERR_BUFFER);
        else {
            memcpy(w->p + w->n, text, n);
            w->n += n;
        }
    }
}

static int w_result(const writer *w)
{
    return w->err ? w->err : (int)w->n;
}

static int is_block_type(uint8_t t)
{
    return t == GBP_TYPE_EMG_BLOCK || t == GBP_TYPE_IMU_BLOCK;
}

static int is_format(uint8_t f)
{
    return f == GBP_FORMAT_INT16 || f == GBP_FORMAT_INT32;
}

/* ---- Builders ---- */

int gbp_build_device_info(uint8_t *out, size_t cap, uint16_t seq, const gbp_device_info *info)
{
    writer w;
    size_t s, c;
    if (info == NULL || (info->streams == NULL && info->n_streams > 0))
        return GBP_ERR_VALUE;
    if (info->n_streams > 255)
        return GBP_ERR_RANGE;
    w_init(&w, out, cap);
    w_header(&w, GBP_TYPE_DEVICE_INFO, GBP_CONTROL_STREAM, seq);
    /* frozen prefix: a host of any version can read these four bytes */
    w_u8(&w, info->protocol_version);
    w_u8(&w, info->fw_major);
    w_u8(&w, info->fw_minor);
    w_u8(&w, info->fw_patch);
    w_u16(&w, info->max_payload);
    w_str8(&w, info->name);
    w_str8(&w, info->serial);
    w_u8(&w, (uint8_t)info->n_streams);
    for (s = 0; s < info->n_streams && !w.err; s++) {
        const gbp_stream_info *st = &info->streams[s];
        if (!is_block_type(st->block_type) || !is_format(st->sample_format) ||
            (st->channels == NULL && st->n_channels > 0))
            return GBP_ERR_VALUE;
        if (st->n_channels > 255)
            return GBP_ERR_RANGE;
        w_u8(&w, st->stream_id);
        w_u8(&w, st->block_type);
        w_u32(&w, st->rate_mhz);
        w_u8(&w, st->sample_format);
        w_u8(&w, (uint8_t)st->n_channels);
        for (c = 0; c < st->n_channels && !w.err; c++) {
            const gbp_channel_info *ch = &st->channels[c];
            w_u8(&w, ch->kind);
            w_f32(&w, ch->scale);
            w_str8(&w, ch->unit);
            w_str8(&w, ch->label);
        }
    }
    return w_result(&w);
}

/* Header and block header; returns 0 or an error before any sample is written. */
static int block_prefix(writer *w, const gbp_block_info *b, uint8_t fmt, size_t size,
                        const void *samples)
{
    size_t count;
    if (b == NULL || !is_block_type(b->type))
        return GBP_ERR_VALUE;
    count = (size_t)b->n_samples * b->n_channels;
    if (samples == NULL && count > 0)
        return GBP_ERR_VALUE;
    /* checked up front (count * size cannot overflow: at most 65535 * 255 * 4) */
    if (GBP_HEADER_SIZE + GBP_BLOCK_HEADER_SIZE + count * size > GBP_MAX_PACKET_SIZE)
        return GBP_ERR_TOO_LARGE;
    w_header(w, b->type, b->stream, b->seq);
    w_u32(w, b->t_us);
    w_u32(w, b->first_sample);
    w_u16(w, b->n_samples);
    w_u8(w, b->n_channels);
    w_u8(w, fmt);
    return w->err;
}

int gbp_build_block_i16(uint8_t *out, size_t cap, const gbp_block_info *b, const int16_t *samples)
{
    writer w;
    size_t i, count;
    int err;
    w_init(&w, out, cap);
    err = block_prefix(&w, b, GBP_FORMAT_INT16, 2, samples);
    if (err)
        return err;
    count = (size_t)b->n_samples * b->n_channels;
    for (i = 0; i < count && !w.err; i++)
        w_u16(&w, (uint16_t)samples[i]); /* two's complement: int16 -> uint16 is well defined */
    return w_result(&w);
}

int gbp_build_block_i32(uint8_t *out, size_t cap, const gbp_block_info *b, uint8_t sample_format,
                        const int32_t *samples)
{
    writer w;
    size_t i, count;
    int err;
    if (!is_format(sample_format))
        return GBP_ERR_VALUE;
    w_init(&w, out, cap);
    err = block_prefix(&w, b, sample_format, sample_format == GBP_FORMAT_INT16 ? 2 : 4, samples);
    if (err)
        return err;
    count = (size_t)b->n_samples * b->n_channels;
    for (i = 0; i < count && !w.err; i++) {
        int32_t v = samples[i];
        if (sample_format == GBP_FORMAT_INT16) {
            if (v < INT16_MIN || v > INT16_MAX)
                return GBP_ERR_RANGE;
            w_u16(&w, (uint16_t)(int16_t)v);
        } else {
            w_u32(&w, (uint32_t)v);
        }
    }
    return w_result(&w);
}

int gbp_build_status(uint8_t *out, size_t cap, uint16_t seq, uint32_t t_us, uint16_t battery_mv,
                     uint8_t battery_pct, uint16_t flags, uint32_t device_dropped)
{
    writer w;
    w_init(&w, out, cap);
    w_header(&w, GBP_TYPE_STATUS, GBP_CONTROL_STREAM, seq);
    w_u32(&w, t_us);
    w_u16(&w, battery_mv);
    w_u8(&w, battery_pct);
    w_u16(&w, flags);
    w_u32(&w, device_dropped);
    return w_result(&w);
}

int gbp_build_marker(uint8_t *out, size_t cap, uint16_t seq, uint32_t t_us, uint16_t code,
                     const char *text)
{
    writer w;
    w_init(&w, out, cap);
    w_header(&w, GBP_TYPE_MARKER, GBP_CONTROL_STREAM, seq);
    w_u32(&w, t_us);
    w_u16(&w, code);
    w_str8(&w, text);
    return w_result(&w);
}

int gbp_build_command(uint8_t *out, size_t cap, uint16_t seq, uint8_t opcode, const uint8_t *args,
                      size_t n_args)
{
    writer w;
    size_t i;
    if (opcode < GBP_OP_HELLO || opcode > GBP_OP_MARK || (args == NULL && n_args > 0))
        return GBP_ERR_VALUE;
    w_init(&w, out, cap);
    w_header(&w, GBP_TYPE_COMMAND, GBP_CONTROL_STREAM, seq);
    w_u8(&w, opcode);
    for (i = 0; i < n_args && !w.err; i++)
        w_u8(&w, args[i]);
    return w_result(&w);
}

int gbp_build_ack(uint8_t *out, size_t cap, uint16_t seq, uint16_t cmd_seq, uint8_t opcode,
                  uint8_t status, const char *message)
{
    writer w;
    if (status > GBP_ACK_INTERNAL_ERROR)
        return GBP_ERR_VALUE;
    w_init(&w, out, cap);
    w_header(&w, GBP_TYPE_ACK, GBP_CONTROL_STREAM, seq);
    w_u16(&w, cmd_seq);
    w_u8(&w, opcode);
    w_u8(&w, status);
    w_str8(&w, message);
    return w_result(&w);
}

/* ---- Notification packer ---- */

int gbp_packer_init(gbp_packer *p, size_t payload)
{
    if (p == NULL || payload < 2 || payload > GBP_MAX_NOTIFY_PAYLOAD)
        return GBP_ERR_VALUE;
    p->payload = (uint16_t)payload;
    p->fill = 0;
    p->counter = 0;
    return 0;
}

size_t gbp_packer_write(gbp_packer *p, const uint8_t *data, size_t len)
{
    size_t room = (size_t)(p->payload - 1u) - p->fill;
    size_t n = len < room ? len : room;
    if (n > 0) {
        memcpy(p->buf + 1 + p->fill, data, n);
        p->fill = (uint16_t)(p->fill + n);
    }
    return n;
}

size_t gbp_packer_peek(gbp_packer *p, int flush, const uint8_t **note)
{
    int full = p->fill == p->payload - 1u;
    if (!(full || (flush && p->fill > 0)))
        return 0;
    p->buf[0] = p->counter;
    *note = p->buf;
    return (size_t)p->fill + 1;
}

void gbp_packer_pop(gbp_packer *p)
{
    if (p->fill == 0)
        return;
    p->fill = 0;
    p->counter = (uint8_t)(p->counter + 1u);
}
