/*
 * test_vectors.c - rebuild every golden vector with the C encoder and compare
 * byte for byte with the .hex files written by the Python encoder
 * (firmware_protocol/vectors/generate.py, which defines the packet fields
 * used here).
 *
 *   test_vectors VECTOR_DIR   run all checks, one line per check; exit 0 iff all pass
 *   test_vectors --frame      read packets as hex lines on stdin, print gbp_frame() of each
 *                             (used by tests/test_vectors.py to fuzz COBS against Python)
 *   test_vectors --notify N   run the notification packer (payload N) on pushes read from
 *                             stdin (tests/test_vectors.py compares with NotificationPacker)
 */
#include "gbp.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_CAP 16384
#define MAX_NOTES 256

static int n_pass, n_fail;

static void result(int ok, const char *name, const char *detail)
{
    if (ok)
        n_pass++;
    else
        n_fail++;
    printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name, detail[0] ? ": " : "", detail);
}

/* ---- hex files ---- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* the files are lowercase by contract */
}

/* Parse one line of hex into out; returns byte count or -1. */
static long parse_hex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (*s && *s != '\n' && *s != '\r') {
        int hi = hexval((unsigned char)s[0]), lo = s[1] ? hexval((unsigned char)s[1]) : -1;
        if (hi < 0 || lo < 0 || n >= cap)
            return -1;
        out[n++] = (uint8_t)(hi * 16 + lo);
        s += 2;
    }
    return (long)n;
}

/*
 * Read a vector file.  lines == NULL: concatenate all data lines into out.
 * Otherwise also record where each data line starts (for notification files).
 */
static long read_vector(const char *dir, const char *name, uint8_t *out, size_t cap,
                        size_t *line_start, size_t *n_lines)
{
    char path[1024], line[4096];
    FILE *f;
    size_t n = 0;
    snprintf(path, sizeof path, "%s/%s.hex", dir, name);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    if (n_lines)
        *n_lines = 0;
    while (fgets(line, sizeof line, f)) {
        long k;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        k = parse_hex(line, out + n, cap - n);
        if (k < 0) {
            fclose(f);
            return -1;
        }
        if (n_lines && *n_lines < MAX_NOTES)
            line_start[(*n_lines)++] = n;
        n += (size_t)k;
    }
    fclose(f);
    return (long)n;
}

static void compare(const char *dir, const char *name, const uint8_t *got, long got_len)
{
    static uint8_t want[BUF_CAP];
    char detail[200];
    long want_len = read_vector(dir, name, want, sizeof want, NULL, NULL), i;
    if (want_len < 0) {
        result(0, name, "cannot read or parse the .hex file");
        return;
    }
    if (got_len < 0) {
        snprintf(detail, sizeof detail, "C encoder failed: %s", gbp_strerror((int)got_len));
        result(0, name, detail);
        return;
    }
    for (i = 0; i < want_len && i < got_len; i++)
        if (want[i] != got[i])
            break;
    if (i == want_len && i == got_len)
        snprintf(detail, sizeof detail, "%ld bytes match", got_len);
    else
        snprintf(detail, sizeof detail, "differs at byte %ld (C %ld bytes, file %ld bytes)", i,
                 got_len, want_len);
    result(i == want_len && i == got_len, name, detail);
}

/* ---- building frames ---- */

/* Builders write to pkt_out[0..pkt_cap); check_bounds swaps in exact-size heap buffers. */
static uint8_t pkt[GBP_MAX_PACKET_SIZE];
static uint8_t *pkt_out = pkt;
static size_t pkt_cap = sizeof pkt;
static int last_len; /* length of the last packet built */
#define P pkt_out, pkt_cap

/* Accumulates the frames of a vector; any error sticks as a negative length. */
typedef struct {
    uint8_t buf[BUF_CAP];
    long len;
} frames;

static void add(frames *fr, int packet_len, const uint8_t *packet)
{
    int n;
    last_len = packet_len;
    if (fr->len < 0)
        return;
    if (packet_len < 0) {
        fr->len = packet_len;
        return;
    }
    n = gbp_frame(packet, (size_t)packet_len, fr->buf + fr->len, sizeof fr->buf - (size_t)fr->len);
    fr->len = n < 0 ? n : fr->len + n;
}


/* Same LCG as generate.py: signed top 16 bits (int16) or the whole state (int32). */
static void lcg16(uint32_t seed, int16_t *out, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        out[i] = (int16_t)(seed >> 16);
    }
}

static void lcg32(uint32_t seed, int32_t *out, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        out[i] = (int32_t)seed;
    }
}

static char text255[256];

static void make_text255(void)
{
    const char *word = "glute ";
    int i;
    for (i = 0; i < 255; i++)
        text255[i] = word[i % 6];
    text255[255] = '\0';
}

static const char *EMG_LABELS[8] = {"L glute max", "R glute max", "L glute med", "R glute med",
                                    "L biceps femoris", "R biceps femoris", "L vastus lateralis",
                                    "R vastus lateralis"};

static void v_device_info_emg8_imu6(frames *fr)
{
    gbp_channel_info emg[8], imu[6];
    gbp_stream_info streams[2];
    gbp_device_info d;
    const char *axes[3] = {"x", "y", "z"};
    static char acc_labels[3][8], gyro_labels[3][8];
    int i;
    for (i = 0; i < 8; i++) {
        emg[i].kind = GBP_KIND_EMG;
        emg[i].scale = 0.195f;
        emg[i].unit = "uV";
        emg[i].label = EMG_LABELS[i];
    }
    for (i = 0; i < 3; i++) {
        snprintf(acc_labels[i], sizeof acc_labels[i], "acc %s", axes[i]);
        snprintf(gyro_labels[i], sizeof gyro_labels[i], "gyro %s", axes[i]);
        imu[i].kind = GBP_KIND_ACC;
        imu[i].scale = (float)(9.80665 / 4096);
        imu[i].unit = "m/s^2";
        imu[i].label = acc_labels[i];
        imu[i + 3].kind = GBP_KIND_GYRO;
        imu[i + 3].scale = 0.0010652644f;
        imu[i + 3].unit = "rad/s";
        imu[i + 3].label = gyro_labels[i];
    }
    streams[0].stream_id = 1, streams[0].block_type = GBP_TYPE_EMG_BLOCK;
    streams[0].rate_mhz = 1000000, streams[0].sample_format = GBP_FORMAT_INT16;
    streams[0].channels = emg, streams[0].n_channels = 8;
    streams[1].stream_id = 2, streams[1].block_type = GBP_TYPE_IMU_BLOCK;
    streams[1].rate_mhz = 104000, streams[1].sample_format = GBP_FORMAT_INT16;
    streams[1].channels = imu, streams[1].n_channels = 6;
    d.protocol_version = GBP_PROTOCOL_VERSION, d.fw_major = 1, d.fw_minor = 2, d.fw_patch = 3;
    d.max_payload = 244, d.name = "glutebridge-L", d.serial = "GB-000123";
    d.streams = streams, d.n_streams = 2;
    add(fr, gbp_build_device_info(P, 0xFFF0, &d), pkt_out);
}

static void v_device_info_empty(frames *fr)
{
    gbp_device_info d = {GBP_PROTOCOL_VERSION, 0, 0, 0, 20, "", NULL, NULL, 0};
    add(fr, gbp_build_device_info(P, 0xFFF1, &d), pkt_out);
}

static void v_device_info_odd(frames *fr)
{
    gbp_channel_info ch[5] = {
        {GBP_KIND_OTHER, 0.0f, "", ""},
        {GBP_KIND_MAG, -1.5f, "\xc2\xb5T", "Ges\xc3\xa4\xc3\x9f-Magnet"},
        {GBP_KIND_EMG, 1e-40f, "V", "subnormal"},
        {GBP_KIND_ACC, FLT_MAX, "x", "max"},
        {GBP_KIND_GYRO, INFINITY, "y", "inf"},
    };
    gbp_stream_info streams[2] = {
        {3, GBP_TYPE_EMG_BLOCK, 0xFFFFFFFFu, GBP_FORMAT_INT32, ch, 5},
        {255, GBP_TYPE_IMU_BLOCK, 0, GBP_FORMAT_INT16, NULL, 0},
    };
    gbp_device_info d = {GBP_PROTOCOL_VERSION, 255, 255, 255, 0xFFFF,
                         "Ges\xc3\xa4\xc3\x9f-Sensor \xe2\x9c\x93", text255, streams, 2};
    add(fr, gbp_build_device_info(P, 0xFFF2, &d), pkt_out);
}

static void v_status_zero(frames *fr)
{
    add(fr, gbp_build_status(P, 0xFFF3, 0, 0, 0, GBP_FLAG_NONE, 0), pkt_out);
}

static void v_status_max(frames *fr)
{
    uint16_t all = GBP_FLAG_CHARGING | GBP_FLAG_STREAMING | GBP_FLAG_LOW_BATTERY |
                   GBP_FLAG_SENSOR_FAULT | GBP_FLAG_CLIPPING | GBP_FLAG_OVERFLOW;
    add(fr, gbp_build_status(P, 0xFFF4, 0xFFFFFFFFu, 0xFFFF, 255, all, 0xFFFFFFFFu), pkt_out);
}

static void v_status_typical(frames *fr)
{
    add(fr, gbp_build_status(P, 0xFFF5, 12345678u, 3900, 80,
                             GBP_FLAG_STREAMING | GBP_FLAG_CHARGING, 7), pkt_out);
}

static void v_marker_empty(frames *fr)
{
    add(fr, gbp_build_marker(P, 0xFFF6, 0, 0, ""), pkt_out);
}

static void v_marker_text_255(frames *fr)
{
    add(fr, gbp_build_marker(P, 0xFFF7, 0xFFFFFFFFu, 0xFFFF, text255), pkt_out);
}

static const char MARKER_UTF8[] = "Ges\xc3\xa4\xc3\x9f links \xe2\x9c\x93 \xf0\x9f\xa6\xb5";

static void v_marker_utf8(frames *fr)
{
    add(fr, gbp_build_marker(P, 0xFFF8, 1000000u, 42, MARKER_UTF8), pkt_out);
}

static void command(frames *fr, uint16_t seq, uint8_t op, const uint8_t *args, size_t n)
{
    add(fr, gbp_build_command(P, seq, op, args, n), pkt_out);
}

static void v_command_hello(frames *fr)
{
    uint8_t a[1] = {GBP_PROTOCOL_VERSION};
    command(fr, 0xFFF9, GBP_OP_HELLO, a, 1);
}

static void v_command_start_all(frames *fr) { command(fr, 0xFFFA, GBP_OP_START, NULL, 0); }

static void v_command_start_stream(frames *fr)
{
    uint8_t a[1] = {1};
    command(fr, 0xFFFB, GBP_OP_START, a, 1);
}

static void v_command_stop_all(frames *fr) { command(fr, 0xFFFC, GBP_OP_STOP, NULL, 0); }

static void v_command_stop_stream(frames *fr)
{
    uint8_t a[1] = {2};
    command(fr, 0xFFFD, GBP_OP_STOP, a, 1);
}

static void v_command_set_rate(frames *fr)
{
    uint8_t a[5] = {1, 0x80, 0x84, 0x1E, 0x00}; /* stream 1, u32 LE 2000000 mHz */
    command(fr, 0xFFFE, GBP_OP_SET_RATE, a, 5);
}

static void v_command_set_channel_mask(frames *fr)
{
    uint8_t a[5] = {1, 0xA5, 0, 0, 0};
    command(fr, 0xFFFF, GBP_OP_SET_CHANNEL_MASK, a, 5);
}

static void v_command_get_status(frames *fr) { command(fr, 0, GBP_OP_GET_STATUS, NULL, 0); }

static void v_command_mark(frames *fr)
{
    uint8_t a[2] = {0xEF, 0xBE};
    command(fr, 1, GBP_OP_MARK, a, 2);
}

/* ACKs: seq 2..7, cmd_seq i or 0xFFFF - i alternately (as generate.py). */
static void ack(frames *fr, int i, uint8_t opcode, uint8_t status, const char *msg)
{
    uint16_t cmd_seq = (uint16_t)((i % 2) ? 0xFFFF - i : i);
    add(fr, gbp_build_ack(P, (uint16_t)(2 + i), cmd_seq, opcode, status, msg), pkt_out);
}

static void v_ack_ok(frames *fr) { ack(fr, 0, 0x01, GBP_ACK_OK, ""); }
static void v_ack_unknown_command(frames *fr)
{
    ack(fr, 1, 0x7F, GBP_ACK_UNKNOWN_COMMAND, "unknown opcode 0x7f");
}
static void v_ack_bad_argument(frames *fr)
{
    ack(fr, 2, 0x04, GBP_ACK_BAD_ARGUMENT, "rate 0 Hz is not supported");
}
static void v_ack_busy(frames *fr) { ack(fr, 3, 0x02, GBP_ACK_BUSY, "busy: calibrating"); }
static void v_ack_unsupported(frames *fr)
{
    ack(fr, 4, 0x05, GBP_ACK_UNSUPPORTED, "channel mask not supported");
}
static void v_ack_internal_error(frames *fr)
{
    ack(fr, 5, 0x06, GBP_ACK_INTERNAL_ERROR, "fuel gauge: I\xc2\xb2" "C timeout");
}

/* The search of generate.cobs_run_marker: text sized for the run, first t_us that works. */
static void cobs_run(frames *fr, uint16_t seq, int run)
{
    char text[300];
    int last_zero = (seq >> 8) == 0 ? 3 : (seq & 0xFF) == 0 ? 2 : 1;
    int text_len = run - 12 + last_zero, i, n = -1;
    uint32_t t_us;
    for (i = 0; i < text_len; i++)
        text[i] = (char)('A' + i % 26);
    text[text_len] = '\0';
    for (t_us = 0x01010101u;; t_us++) {
        uint16_t crc;
        if (!(t_us & 0xFFu) || !(t_us & 0xFF00u) || !(t_us & 0xFF0000u) || !(t_us >> 24))
            continue;
        n = gbp_build_marker(P, seq, t_us, 0x0101, text);
        if (n < 0)
            break;
        crc = gbp_crc16(pkt_out, (size_t)n);
        if ((crc >> 8) && (crc & 0xFF))
            break;
    }
    add(fr, n, pkt_out);
}

static void v_marker_cobs_run_253(frames *fr) { cobs_run(fr, 8, 253); }
static void v_marker_cobs_run_254(frames *fr) { cobs_run(fr, 9, 254); }
static void v_marker_cobs_run_255(frames *fr) { cobs_run(fr, 10, 255); }

static void blk16(frames *fr, uint8_t type, uint8_t stream, uint16_t seq, uint32_t t_us,
                  uint32_t first, uint16_t n, uint8_t nch, const int16_t *s)
{
    gbp_block_info b = {0, 0, 0, 0, 0, 0, 0};
    b.type = type, b.stream = stream, b.seq = seq, b.t_us = t_us, b.first_sample = first;
    b.n_samples = n, b.n_channels = nch;
    add(fr, gbp_build_block_i16(P, &b, s), pkt_out);
}

static void blk32(frames *fr, uint8_t stream, uint16_t seq, uint32_t t_us, uint32_t first,
                  uint16_t n, uint8_t nch, const int32_t *s)
{
    gbp_block_info b = {GBP_TYPE_EMG_BLOCK, 0, 0, 0, 0, 0, 0};
    b.stream = stream, b.seq = seq, b.t_us = t_us, b.first_sample = first;
    b.n_samples = n, b.n_channels = nch;
    add(fr, gbp_build_block_i32(P, &b, GBP_FORMAT_INT32, s), pkt_out);
}

static void v_emg_int16_extremes(frames *fr)
{
    static const int16_t e[8] = {INT16_MIN, INT16_MAX, 0, -1, 1, -32767, 32766, 256};
    int16_t s[32];
    int i;
    for (i = 0; i < 32; i++)
        s[i] = e[i % 8];
    blk16(fr, GBP_TYPE_EMG_BLOCK, 1, 0xFFFE, 0xFFFFFFFFu, 0xFFFFFFFCu, 4, 8, s);
}

static void v_emg_int16_20x8(frames *fr)
{
    int16_t s[160];
    lcg16(1, s, 160);
    blk16(fr, GBP_TYPE_EMG_BLOCK, 1, 0xFFFF, 3000, 0, 20, 8, s);
}

static void v_emg_all_zero(frames *fr)
{
    static const int16_t s[400];
    blk16(fr, GBP_TYPE_EMG_BLOCK, 1, 0, 23000, 20, 50, 8, s);
}

static void v_emg_empty(frames *fr)
{
    blk16(fr, GBP_TYPE_EMG_BLOCK, 1, 1, 73000, 70, 0, 8, NULL);
}

static void v_emg_max_packet(frames *fr)
{
    static int16_t s[1016];
    lcg16(2, s, 1016);
    blk16(fr, GBP_TYPE_EMG_BLOCK, 1, 2, 73000, 70, 127, 8, s);
}

static void v_imu_int16_10x6(frames *fr)
{
    int16_t s[60];
    lcg16(3, s, 60);
    blk16(fr, GBP_TYPE_IMU_BLOCK, 2, 0, 0, 0, 10, 6, s);
}

static void v_imu_int16_1x6(frames *fr)
{
    static const int16_t s[6] = {INT16_MIN, INT16_MAX, 0, 1, -1, 12345};
    blk16(fr, GBP_TYPE_IMU_BLOCK, 2, 1, 96154, 10, 1, 6, s);
}

static void v_emg_int32_extremes(frames *fr)
{
    int32_t s[15] = {INT32_MIN, INT32_MAX, 0, -1, 1};
    lcg32(4, s + 5, 10);
    blk32(fr, 3, 0xFFFF, 5, 0, 3, 5, s);
}

static void v_emg_int32_1x1(frames *fr)
{
    static const int32_t s[1] = {0x01020304};
    blk32(fr, 3, 0, 10, 3, 1, 1, s);
}

static void v_session_three_frames(frames *fr)
{
    int16_t emg[16], imu[6];
    lcg16(5, emg, 16);
    lcg16(6, imu, 6);
    add(fr, gbp_build_status(P, 11, 100000u, 3700, 55, GBP_FLAG_STREAMING, 0), pkt_out);
    blk16(fr, GBP_TYPE_EMG_BLOCK, 1, 3, 200000u, 197, 2, 8, emg);
    blk16(fr, GBP_TYPE_IMU_BLOCK, 2, 2, 200000u, 11, 1, 6, imu);
}

static const struct {
    const char *name;
    void (*build)(frames *);
} VECTORS[] = {
    {"01_device_info_emg8_imu6", v_device_info_emg8_imu6},
    {"02_device_info_empty", v_device_info_empty},
    {"03_device_info_odd", v_device_info_odd},
    {"04_status_zero", v_status_zero},
    {"05_status_max", v_status_max},
    {"06_status_typical", v_status_typical},
    {"07_marker_empty", v_marker_empty},
    {"08_marker_text_255", v_marker_text_255},
    {"09_marker_utf8", v_marker_utf8},
    {"10_command_hello", v_command_hello},
    {"11_command_start_all", v_command_start_all},
    {"12_command_start_stream", v_command_start_stream},
    {"13_command_stop_all", v_command_stop_all},
    {"14_command_stop_stream", v_command_stop_stream},
    {"15_command_set_rate", v_command_set_rate},
    {"16_command_set_channel_mask", v_command_set_channel_mask},
    {"17_command_get_status", v_command_get_status},
    {"18_command_mark", v_command_mark},
    {"19_ack_ok", v_ack_ok},
    {"20_ack_unknown_command", v_ack_unknown_command},
    {"21_ack_bad_argument", v_ack_bad_argument},
    {"22_ack_busy", v_ack_busy},
    {"23_ack_unsupported", v_ack_unsupported},
    {"24_ack_internal_error", v_ack_internal_error},
    {"25_marker_cobs_run_253", v_marker_cobs_run_253},
    {"26_marker_cobs_run_254", v_marker_cobs_run_254},
    {"27_marker_cobs_run_255", v_marker_cobs_run_255},
    {"28_emg_int16_extremes", v_emg_int16_extremes},
    {"29_emg_int16_20x8", v_emg_int16_20x8},
    {"30_emg_all_zero", v_emg_all_zero},
    {"31_emg_empty", v_emg_empty},
    {"32_emg_max_packet", v_emg_max_packet},
    {"33_imu_int16_10x6", v_imu_int16_10x6},
    {"34_imu_int16_1x6", v_imu_int16_1x6},
    {"35_emg_int32_extremes", v_emg_int32_extremes},
    {"36_emg_int32_1x1", v_emg_int32_1x1},
    {"37_session_three_frames", v_session_three_frames},
};
#define N_VECTORS (sizeof VECTORS / sizeof VECTORS[0])

/* ---- notification packing ---- */

static void check_notifications(const char *dir, size_t payload)
{
    static uint8_t want[BUF_CAP];
    static frames fr;
    size_t starts[MAX_NOTES], n_lines = 0, off = 0, k = 0;
    char name[64], detail[200];
    long want_len;
    gbp_packer pk;
    int ok = 1;

    snprintf(name, sizeof name, "notify_payload%u", (unsigned)payload);
    want_len = read_vector(dir, name, want, sizeof want, starts, &n_lines);
    fr.len = 0;
    v_emg_int16_extremes(&fr); /* generate.NOTIFY_STREAM */
    v_emg_int16_20x8(&fr);
    v_imu_int16_10x6(&fr);
    v_emg_all_zero(&fr);
    if (want_len < 0 || fr.len < 0 || gbp_packer_init(&pk, payload) != 0) {
        result(0, name, "cannot read the file or build the stream");
        return;
    }
    while (off < (size_t)fr.len && ok) {
        const uint8_t *note;
        size_t len, end;
        off += gbp_packer_write(&pk, fr.buf + off, (size_t)fr.len - off);
        len = gbp_packer_peek(&pk, 1, &note);
        if (len == 0)
            continue;
        end = k + 1 < n_lines ? starts[k + 1] : (size_t)want_len;
        ok = k < n_lines && len == end - starts[k] && memcmp(note, want + starts[k], len) == 0;
        if (ok && k % 2 == 1) {
            /* a failed notify: peek again without pop must give the same bytes */
            const uint8_t *again;
            ok = gbp_packer_peek(&pk, 1, &again) == len && again == note;
        }
        gbp_packer_pop(&pk);
        k++;
    }
    ok = ok && k == n_lines;
    snprintf(detail, sizeof detail, "%s after %u of %u notifications", ok ? "all match" : "differs",
             (unsigned)k, (unsigned)n_lines);
    result(ok, name, detail);
}

/* ---- other checks: CRC, errors, buffer bounds ---- */

static void check_crc(void)
{
    char detail[64];
    uint16_t crc = gbp_crc16((const uint8_t *)"123456789", 9);
    snprintf(detail, sizeof detail, "0x%04X, expected 0x%04X", crc, GBP_CRC_CHECK_VALUE);
    result(crc == GBP_CRC_CHECK_VALUE, "crc16_check_value", detail);
}

static void expect(const char *name, int got, int want)
{
    char detail[120];
    snprintf(detail, sizeof detail, "returned %d (%s), expected %d", got, gbp_strerror(got), want);
    result(got == want, name, detail);
}

static void check_errors(void)
{
    char long_text[300];
    static int16_t s16[1100];
    static int32_t s32[4] = {0, 32767, -32768, 32768};
    static uint8_t big[GBP_MAX_PACKET_SIZE + 16];
    gbp_block_info b = {GBP_TYPE_EMG_BLOCK, 1, 0, 0, 0, 128, 8};
    gbp_stream_info bad_stream = {1, GBP_TYPE_STATUS, 1000, GBP_FORMAT_INT16, NULL, 0};
    gbp_device_info d = {1, 0, 0, 0, 20, "", "", &bad_stream, 1};
    gbp_packer pk;
    memset(long_text, 'a', 256);
    long_text[256] = '\0';
    expect("err_string_256_bytes", gbp_build_marker(P, 0, 0, 0, long_text), GBP_ERR_RANGE);
    expect("err_utf8_lone_continuation", gbp_build_marker(P, 0, 0, 0, "a\x80"), GBP_ERR_UTF8);
    expect("err_utf8_overlong", gbp_build_marker(P, 0, 0, 0, "\xc0\xaf"), GBP_ERR_UTF8);
    expect("err_utf8_surrogate", gbp_build_ack(P, 0, 0, 0, 0, "\xed\xa0\x80"), GBP_ERR_UTF8);
    expect("err_utf8_truncated", gbp_build_ack(P, 0, 0, 0, 0, "\xe2\x9c"), GBP_ERR_UTF8);
    expect("err_utf8_above_max", gbp_build_ack(P, 0, 0, 0, 0, "\xf4\x90\x80\x80"), GBP_ERR_UTF8);
    expect("ok_utf8_max_code_point", gbp_build_ack(P, 0, 0, 0, 0, "\xf4\x8f\xbf\xbf"), 13);
    expect("err_block_too_large", gbp_build_block_i16(P, &b, s16), GBP_ERR_TOO_LARGE);
    b.n_samples = 2;
    b.n_channels = 2;
    expect("err_int32_to_int16_range", gbp_build_block_i32(P, &b, GBP_FORMAT_INT16, s32),
           GBP_ERR_RANGE);
    b.n_channels = 1;
    expect("ok_int32_as_int16", gbp_build_block_i32(P, &b, GBP_FORMAT_INT16, s32), 20);
    expect("err_bad_format", gbp_build_block_i32(P, &b, 3, s32), GBP_ERR_VALUE);
    expect("err_null_samples", gbp_build_block_i16(P, &b, NULL), GBP_ERR_VALUE);
    b.type = GBP_TYPE_STATUS;
    expect("err_bad_block_type", gbp_build_block_i16(P, &b, s16), GBP_ERR_VALUE);
    expect("err_bad_opcode", gbp_build_command(P, 0, 0x08, NULL, 0), GBP_ERR_VALUE);
    expect("err_bad_ack_status", gbp_build_ack(P, 0, 0, 1, 6, ""), GBP_ERR_VALUE);
    expect("err_stream_block_type", gbp_build_device_info(P, 0, &d), GBP_ERR_VALUE);
    expect("err_command_too_large", gbp_build_command(P, 0, GBP_OP_MARK, big, 2044),
           GBP_ERR_TOO_LARGE);
    expect("err_frame_too_large",
           gbp_frame(big, GBP_MAX_PACKET_SIZE + 1, (uint8_t *)s16, sizeof s16), GBP_ERR_TOO_LARGE);
    expect("err_packer_payload_1", gbp_packer_init(&pk, 1), GBP_ERR_VALUE);
    expect("err_packer_payload_513", gbp_packer_init(&pk, GBP_MAX_NOTIFY_PAYLOAD + 1),
           GBP_ERR_VALUE);
}

/*
 * Every vector's builders and gbp_frame, given every capacity below the size
 * they need (all up to 300, then a stride), must return GBP_ERR_BUFFER and
 * write nothing past the capacity: the buffers are exact-size heap blocks plus
 * one guard byte, so -fsanitize=address also catches any stray write.
 */
static void check_bounds(void)
{
    static frames fr;
    static uint8_t packet[GBP_MAX_PACKET_SIZE];
    size_t v, cap;
    char detail[160] = "";
    int ok = 1, frame_len, packet_len;
    for (v = 0; v < N_VECTORS && ok; v++) {
        fr.len = 0;
        pkt_out = pkt;
        pkt_cap = sizeof pkt;
        VECTORS[v].build(&fr);
        packet_len = last_len;
        memcpy(packet, pkt, (size_t)packet_len);
        frame_len = gbp_frame(packet, (size_t)packet_len, fr.buf, sizeof fr.buf);
        for (cap = 0; cap <= (size_t)frame_len && ok; cap += cap < 300 ? 1 : 13) {
            uint8_t *buf = malloc(cap + 1);
            int n_built, n_framed;
            if (buf == NULL)
                break;
            buf[cap] = 0xA5;
            pkt_out = buf;
            pkt_cap = cap;
            fr.len = 0;
            VECTORS[v].build(&fr); /* fr.len < 0 once a packet does not fit */
            n_built = last_len;
            ok = buf[cap] == 0xA5 && (cap < (size_t)packet_len ? n_built == GBP_ERR_BUFFER
                                                             : n_built >= 0);
            n_framed = gbp_frame(packet, (size_t)packet_len, buf, cap);
            ok = ok && buf[cap] == 0xA5 &&
                 (cap < (size_t)frame_len ? n_framed == GBP_ERR_BUFFER : n_framed == frame_len);
            if (!ok)
                snprintf(detail, sizeof detail, "%s: cap %u gave build %d, frame %d",
                         VECTORS[v].name, (unsigned)cap, n_built, n_framed);
            free(buf);
        }
    }
    pkt_out = pkt;
    pkt_cap = sizeof pkt;
    if (ok)
        snprintf(detail, sizeof detail, "every too-small buffer refused, no byte past it written");
    result(ok, "buffer_bounds", detail);
}

/* ---- --frame mode ---- */

static int frame_stdin(void)
{
    static char line[3 * GBP_MAX_PACKET_SIZE + 16];
    static uint8_t in[GBP_MAX_PACKET_SIZE], out[GBP_MAX_FRAME];
    while (fgets(line, sizeof line, stdin)) {
        long n = parse_hex(line, in, sizeof in);
        int k, i;
        if (n < 0)
            return 2;
        k = gbp_frame(in, (size_t)n, out, sizeof out);
        if (k < 0)
            return 3;
        for (i = 0; i < k; i++)
            printf("%02x", out[i]);
        printf("\n");
    }
    return 0;
}

/*
 * --notify PAYLOAD: each stdin line is "F <hex>" or "N <hex>", one push of
 * framed bytes with or without flush (NotificationPacker.push).  Prints the
 * notifications it produced, one per line, then "-" after each push.
 */
static void emit(gbp_packer *pk, int flush)
{
    const uint8_t *note;
    size_t len = gbp_packer_peek(pk, flush, &note), i;
    for (i = 0; i < len; i++)
        printf("%02x", note[i]);
    if (len) {
        printf("\n");
        gbp_packer_pop(pk);
    }
}

static int notify_stdin(const char *payload_arg)
{
    static char line[3 * BUF_CAP];
    static uint8_t data[BUF_CAP];
    gbp_packer pk;
    if (gbp_packer_init(&pk, (size_t)atoi(payload_arg)) != 0)
        return 2;
    while (fgets(line, sizeof line, stdin)) {
        long n = (line[0] == 'F' || line[0] == 'N') && line[1] == ' '
                     ? parse_hex(line + 2, data, sizeof data) : -1;
        size_t off = 0;
        if (n < 0)
            return 2;
        for (;;) {
            off += gbp_packer_write(&pk, data + off, (size_t)n - off);
            if (gbp_packer_peek(&pk, 0, &(const uint8_t *){NULL}) == 0)
                break; /* not full: every byte was taken */
            emit(&pk, 0);
        }
        if (line[0] == 'F')
            emit(&pk, 1);
        printf("-\n");
    }
    return 0;
}

int main(int argc, char **argv)
{
    static frames fr;
    size_t v;
    if (argc == 2 && strcmp(argv[1], "--frame") == 0)
        return frame_stdin();
    if (argc == 3 && strcmp(argv[1], "--notify") == 0)
        return notify_stdin(argv[2]);
    if (argc != 2) {
        fprintf(stderr, "usage: %s VECTOR_DIR | --frame\n", argv[0]);
        return 2;
    }
    make_text255();
    check_crc();
    for (v = 0; v < N_VECTORS; v++) {
        fr.len = 0;
        VECTORS[v].build(&fr);
        compare(argv[1], VECTORS[v].name, fr.buf, fr.len);
    }
    check_notifications(argv[1], 20);
    check_notifications(argv[1], 244);
    check_errors();
    check_bounds();
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail == 0 ? 0 : 1;
}
