/*
 * gbp.h - glutebridge wire protocol, reference encoder for firmware (C99).
 *
 * Dependency-free: no malloc, no stdio.  Every builder writes into a buffer
 * the caller provides and returns the number of bytes written, or a negative
 * GBP_ERR_* code (nothing useful is left in the buffer then).
 *
 * The byte layouts mirror firmware_protocol/packets.py, the single source of
 * truth; tests/test_vectors.py parses this header and checks that every
 * constant below equals its Python counterpart, and the program in
 * test_vectors.c checks the builders byte for byte against the golden vectors
 * in firmware_protocol/vectors/.
 *
 * Typical use (one EMG block over UART):
 *
 *     uint8_t pkt[GBP_MAX_PACKET_SIZE], wire[GBP_MAX_FRAME];
 *     gbp_block_info b = {GBP_TYPE_EMG_BLOCK, 1, seq++, t_us, first, 20, 8};
 *     int n = gbp_build_block_i16(pkt, sizeof pkt, &b, samples);
 *     if (n >= 0) n = gbp_frame(pkt, (size_t)n, wire, sizeof wire);
 *     if (n >= 0) uart_write(wire, (size_t)n);
 *
 * Strings are NUL-terminated UTF-8 (NULL means ""), at most 255 bytes; they
 * are checked for valid UTF-8 because the host drops packets whose strings
 * do not decode.
 */
#ifndef GBP_H
#define GBP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Protocol constants (checked against packets.py by the tests) ---- */
#define GBP_PROTOCOL_VERSION 1
#define GBP_MAX_PACKET_SIZE 2048 /* header + body, before framing */
#define GBP_HEADER_SIZE 4        /* type:u8 stream:u8 seq:u16 */
#define GBP_BLOCK_HEADER_SIZE 12 /* t_us:u32 first_sample:u32 n:u16 nch:u8 fmt:u8 */
#define GBP_CONTROL_STREAM 0
#define GBP_CRC_CHECK_VALUE 0x29B1 /* CRC-16/CCITT-FALSE of "123456789" */

/* Largest frame (CRC, COBS overhead and 0x00 delimiter included) for a packet of n bytes. */
#define GBP_MAX_FRAME_SIZE(n) ((n) + 2 + ((n) + 2) / 254 + 1 + 1)
#define GBP_MAX_FRAME GBP_MAX_FRAME_SIZE(GBP_MAX_PACKET_SIZE)

/* BLE GATT layout. */
#define GBP_SERVICE_UUID "8f3c0001-5a7b-4c1e-9d2a-3b6e1f0a2c47"
#define GBP_DATA_CHAR_UUID "8f3c0002-5a7b-4c1e-9d2a-3b6e1f0a2c47"
#define GBP_COMMAND_CHAR_UUID "8f3c0003-5a7b-4c1e-9d2a-3b6e1f0a2c47"

/* Packet types. */
#define GBP_TYPE_DEVICE_INFO 0x01
#define GBP_TYPE_STATUS 0x02
#define GBP_TYPE_MARKER 0x03
#define GBP_TYPE_COMMAND 0x04
#define GBP_TYPE_ACK 0x05
#define GBP_TYPE_EMG_BLOCK 0x10
#define GBP_TYPE_IMU_BLOCK 0x11

/* Channel kinds (DEVICE_INFO). */
#define GBP_KIND_OTHER 0
#define GBP_KIND_EMG 1
#define GBP_KIND_ACC 2
#define GBP_KIND_GYRO 3
#define GBP_KIND_MAG 4

/* Sample formats (two's complement little-endian). */
#define GBP_FORMAT_INT16 1
#define GBP_FORMAT_INT32 2

/* Command opcodes (host -> device). */
#define GBP_OP_HELLO 0x01            /* args: u8 highest version the host speaks */
#define GBP_OP_START 0x02            /* args: none (all streams) or u8 stream */
#define GBP_OP_STOP 0x03             /* args: none (all streams) or u8 stream */
#define GBP_OP_SET_RATE 0x04         /* args: u8 stream, u32 rate in mHz */
#define GBP_OP_SET_CHANNEL_MASK 0x05 /* args: u8 stream, u32 channel bit mask */
#define GBP_OP_GET_STATUS 0x06       /* args: none; answer ACK then STATUS */
#define GBP_OP_MARK 0x07             /* args: u16 code; answer MARKER */

/* ACK statuses. */
#define GBP_ACK_OK 0
#define GBP_ACK_UNKNOWN_COMMAND 1
#define GBP_ACK_BAD_ARGUMENT 2
#define GBP_ACK_BUSY 3
#define GBP_ACK_UNSUPPORTED 4
#define GBP_ACK_INTERNAL_ERROR 5

/* STATUS flags (bit mask). */
#define GBP_FLAG_NONE 0x00
#define GBP_FLAG_CHARGING 0x01
#define GBP_FLAG_STREAMING 0x02
#define GBP_FLAG_LOW_BATTERY 0x04
#define GBP_FLAG_SENSOR_FAULT 0x08
#define GBP_FLAG_CLIPPING 0x10
#define GBP_FLAG_OVERFLOW 0x20

/* ---- Error codes (negative return values) ---- */
#define GBP_ERR_BUFFER (-1)    /* output buffer too small */
#define GBP_ERR_RANGE (-2)     /* a value does not fit its field (string > 255 bytes, count > 255, sample > int16) */
#define GBP_ERR_TOO_LARGE (-3) /* packet would exceed GBP_MAX_PACKET_SIZE */
#define GBP_ERR_VALUE (-4)     /* invalid code (type, format, opcode, status) or NULL data with a non-zero count */
#define GBP_ERR_UTF8 (-5)      /* a string is not valid UTF-8 */

/* Short English description of a GBP_ERR_* code (static string). */
const char *gbp_strerror(int err);

/* ---- CRC and framing ---- */

/* CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, not reflected, no xorout. */
uint16_t gbp_crc16(const uint8_t *data, size_t len);

/*
 * Frame a packet for a byte stream: COBS(packet || crc16_be(packet)) || 0x00.
 * out must not overlap packet; cap >= GBP_MAX_FRAME_SIZE(len) always suffices.
 * Returns the frame length or GBP_ERR_BUFFER.
 */
int gbp_frame(const uint8_t *packet, size_t len, uint8_t *out, size_t cap);

/* ---- Packet builders: return the packet length (header + body) ---- */

typedef struct {
    uint8_t kind;      /* GBP_KIND_* */
    float scale;       /* physical value = raw count * scale, sent as IEEE-754 binary32 */
    const char *unit;  /* e.g. "uV" */
    const char *label; /* e.g. "L glute max" */
} gbp_channel_info;

typedef struct {
    uint8_t stream_id;
    uint8_t block_type;    /* GBP_TYPE_EMG_BLOCK or GBP_TYPE_IMU_BLOCK */
    uint32_t rate_mhz;     /* sample rate in millihertz (1000 Hz -> 1000000) */
    uint8_t sample_format; /* GBP_FORMAT_INT16 or GBP_FORMAT_INT32 */
    const gbp_channel_info *channels;
    size_t n_channels; /* at most 255 */
} gbp_stream_info;

typedef struct {
    uint8_t protocol_version; /* normally GBP_PROTOCOL_VERSION */
    uint8_t fw_major, fw_minor, fw_patch;
    uint16_t max_payload; /* largest notification / serial chunk the device sends */
    const char *name;
    const char *serial;
    const gbp_stream_info *streams;
    size_t n_streams; /* at most 255 */
} gbp_device_info;

int gbp_build_device_info(uint8_t *out, size_t cap, uint16_t seq, const gbp_device_info *info);

typedef struct {
    uint8_t type;          /* GBP_TYPE_EMG_BLOCK or GBP_TYPE_IMU_BLOCK */
    uint8_t stream;        /* stream id from DEVICE_INFO */
    uint16_t seq;          /* per-stream packet counter, wraps */
    uint32_t t_us;         /* device clock at the first sample, wraps */
    uint32_t first_sample; /* index of the first sample in the stream, wraps */
    uint16_t n_samples;
    uint8_t n_channels;
} gbp_block_info;

/* samples: n_samples * n_channels values interleaved by channel (sample-major). */
int gbp_build_block_i16(uint8_t *out, size_t cap, const gbp_block_info *b, const int16_t *samples);
/* Same from int32 values, sent as sample_format (GBP_FORMAT_INT16 checks each value fits). */
int gbp_build_block_i32(uint8_t *out, size_t cap, const gbp_block_info *b, uint8_t sample_format,
                        const int32_t *samples);

int gbp_build_status(uint8_t *out, size_t cap, uint16_t seq, uint32_t t_us, uint16_t battery_mv,
                     uint8_t battery_pct, uint16_t flags, uint32_t device_dropped);
int gbp_build_marker(uint8_t *out, size_t cap, uint16_t seq, uint32_t t_us, uint16_t code,
                     const char *text);
int gbp_build_command(uint8_t *out, size_t cap, uint16_t seq, uint8_t opcode, const uint8_t *args,
                      size_t n_args);
int gbp_build_ack(uint8_t *out, size_t cap, uint16_t seq, uint16_t cmd_seq, uint8_t opcode,
                  uint8_t status, const char *message);

/* ---- BLE notification packer ----
 *
 * Splits the framed byte stream into notifications of at most `payload`
 * bytes (ATT_MTU - 3): a counter byte, then up to payload - 1 stream bytes.
 * Frames may span notifications and share them, exactly like
 * firmware_protocol.encoder.NotificationPacker.  Loop:
 *
 *     size_t off = 0;
 *     const uint8_t *note;
 *     while (off < n) {
 *         off += gbp_packer_write(&pk, wire + off, n - off);
 *         size_t len = gbp_packer_peek(&pk, 1, &note);   // 1 = flush a partial one
 *         if (len && ble_notify(note, len) == OK) gbp_packer_pop(&pk);
 *     }
 *
 * If the notify fails, do not pop: peek again later and the same
 * notification (same counter) is returned.  To fill notifications (fewer of
 * them), peek with flush = 0 while frames keep coming and with flush = 1 once
 * per connection interval, so no byte waits longer than that (spec.md, BLE).
 *
 * On a byte stream, sending a lone 0x00 before the first frame makes the
 * host resynchronise at once (empty frames are ignored).
 */
#define GBP_MAX_NOTIFY_PAYLOAD 512 /* largest ATT attribute value */

typedef struct {
    uint16_t payload; /* bytes per notification, counter included */
    uint16_t fill;    /* stream bytes waiting in buf[1..] */
    uint8_t counter;  /* counter of the next notification */
    uint8_t buf[GBP_MAX_NOTIFY_PAYLOAD];
} gbp_packer;

/* payload in 2..GBP_MAX_NOTIFY_PAYLOAD, else GBP_ERR_VALUE.  Counter starts at 0. */
int gbp_packer_init(gbp_packer *p, size_t payload);
/* Copy framed bytes in until the pending notification is full; returns how many were taken. */
size_t gbp_packer_write(gbp_packer *p, const uint8_t *data, size_t len);
/* Pending notification (counter + data) if full, or if flush and not empty; else 0. */
size_t gbp_packer_peek(gbp_packer *p, int flush, const uint8_t **note);
/* Mark the peeked notification as sent: next counter, empty buffer. */
void gbp_packer_pop(gbp_packer *p);

#ifdef __cplusplus
}
#endif

#endif /* GBP_H */
