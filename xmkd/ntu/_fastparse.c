/* One-pass C parser for NTU RGB+D .skeleton files: the fast path of xmkd.ntu.skeleton_file.
 *
 * parse(data: bytes, allow_nonfinite: bool = False) -> (counts, ids, info, joints) | None
 *
 * It counts the bodies (reading the count lines, skipping the others) to size its arrays, then
 * walks the file's frame/body/joint structure once, converting each token as it goes, and
 * returns four bytearrays holding the columns of SkeletonSequence: body counts (int64, F), body
 * IDs (uint64, B), body info (float64, B x 9) and joints (float64, B x 25 x 12). It returns None
 * for anything it does not accept, malformed or merely unusual (a number spelled "+5" or "nan",
 * a count spelled "2.0", other bytes than digits, signs, points, exponents and ASCII whitespace):
 * the exact Python scan then either reads the file or raises the FormatError naming the line.
 * Unless allow_nonfinite, a value that converts to inf (e.g. 1e999) is refused the same way
 * (spellings such as "nan" or "inf" never pass the grammar), so the scan names it.
 * So this parser never decides an error message, it only has to be exact where it accepts.
 *
 * Exactness: a number -?D*(.D*)?([eE][+-]?D+)? with at most 19 digits has an integer mantissa
 * M and a decimal exponent e; when M <= 2**53 and |e| <= 22 both M and 10**|e| are exact
 * doubles, so the one IEEE multiplication or division gives the correctly rounded value, i.e.
 * what float() returns for the text (Clinger's fast path; needs FLT_EVAL_METHOD 0, checked
 * below). Other numbers go through PyOS_string_to_double, the conversion float() itself uses.
 * Body IDs are read as 64-bit integers (they exceed double precision).
 *
 * Lines end at '\n'; within a line tokens are separated by the bytes Python's bytes.split()
 * treats as whitespace (space, \t, \r, \v, \f), as in the exact scan; after the last frame only
 * whitespace may follow.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "exact decimal conversion needs double arithmetic without extended precision"
#endif
#ifdef __FAST_MATH__
#error "exact decimal conversion needs IEEE arithmetic: do not build with -ffast-math"
#endif

#define NUM_JOINTS 25
#define JOINT_FIELDS 12
#define INFO_FIELDS 9
/* Fewest bytes a body can take: an info line of 10 one-byte tokens (20 bytes with separators
 * and '\n'), "25\n", and 25 joint lines of 12 one-byte tokens (24 bytes each), less the final
 * line break the last line of the file may lack. Bounds the body count of a file. */
#define MIN_BODY_BYTES (20 + 3 + NUM_JOINTS * 24 - 1)
#define BODY_LINES (2 + NUM_JOINTS)
#define MAX_SLOW_TOKEN 128

enum { OTHER = 0, DIGIT, BLANK, NEWLINE };
static unsigned char kind[256];

static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

typedef struct {
    const unsigned char *p;   /* next byte */
    const unsigned char *end; /* one past the data; *end is the bytes object's NUL */
    PyThreadState *released;  /* the saved thread state while the GIL is released */
    int allow_nonfinite;      /* accept values that overflow to +-inf */
} Cursor;

static inline void skip_blanks(Cursor *c)
{
    while (kind[*c->p] == BLANK) c->p++;
}

/* The byte after a token must separate it: a blank, a line break or the end of the data. */
static inline int token_ends_at(const Cursor *c, const unsigned char *p)
{
    unsigned char k = kind[*p];
    return k == BLANK || k == NEWLINE || p == c->end;
}

/* Before a token of a line: 0 when the line (or the file) ends instead. */
static inline int token_follows(Cursor *c)
{
    skip_blanks(c);
    return c->p != c->end && *c->p != '\n';
}

/* After the last token of a line: only blanks, then the line break or the end of the data. */
static inline int line_ends(Cursor *c)
{
    skip_blanks(c);
    if (*c->p == '\n') {
        c->p++;
        return 1;
    }
    return c->p == c->end;
}

/* A text float() reads but the fast path cannot convert exactly: Python's own conversion. */
static int convert_slowly(Cursor *c, const unsigned char *start, size_t length, double *out)
{
    char text[MAX_SLOW_TOKEN + 1];
    char *stop = NULL;
    double value;
    int ok;
    if (length > MAX_SLOW_TOKEN) return 0;
    memcpy(text, start, length);
    text[length] = '\0';
    /* Python's conversion keeps state shared between threads: hold the GIL for it. */
    if (c->released) PyEval_RestoreThread(c->released);
    value = PyOS_string_to_double(text, &stop, NULL);
    ok = !(value == -1.0 && PyErr_Occurred()) && stop == text + length;
    if (!ok) PyErr_Clear();
    if (c->released) c->released = PyEval_SaveThread();
    /* Only this conversion can overflow: the fast one multiplies exact values below 2**127. */
    if (!c->allow_nonfinite && !isfinite(value)) ok = 0;
    *out = value;
    return ok;
}

/* A decimal number (the grammar in the header); 0 when the token is anything else. */
static inline int read_number(Cursor *c, double *out)
{
    const unsigned char *start = c->p, *p = c->p, *digits;
    uint64_t mantissa = 0;
    unsigned d;
    int negative = 0, count, exponent = 0;
    double value;
    if (*p == '-') {
        negative = 1;
        p++;
    }
    /* Digits accumulate without overflow checks: more than 19 go to the slow conversion. */
    digits = p;
    while ((d = (unsigned)*p - '0') < 10) {
        mantissa = mantissa * 10 + d;
        p++;
    }
    count = (int)(p - digits);
    if (*p == '.') {
        p++;
        digits = p;
        while ((d = (unsigned)*p - '0') < 10) {
            mantissa = mantissa * 10 + d;
            p++;
        }
        exponent = -(int)(p - digits);
        count += (int)(p - digits);
    }
    if (count == 0) return 0; /* "", "-", ".", "-." */
    if ((*p | 0x20) == 'e') {
        int exp_negative = 0, written = 0;
        p++;
        if (*p == '-' || *p == '+') exp_negative = *p++ == '-';
        digits = p;
        while ((d = (unsigned)*p - '0') < 10) {
            if (written < 100000) written = written * 10 + (int)d;
            p++;
        }
        if (p == digits) return 0;
        exponent += exp_negative ? -written : written;
    }
    if (!token_ends_at(c, p)) return 0;
    c->p = p;
    if (count > 19 || mantissa > ((uint64_t)1 << 53)) {
        return convert_slowly(c, start, (size_t)(p - start), out);
    }
    if (mantissa == 0) {
        value = 0.0;
    } else if (exponent >= 0 && exponent <= 22) {
        value = (double)mantissa * POW10[exponent];
    } else if (exponent < 0 && exponent >= -22) {
        value = (double)mantissa / POW10[-exponent];
    } else {
        return convert_slowly(c, start, (size_t)(p - start), out);
    }
    *out = negative ? -value : value;
    return 1;
}

/* A token of digits only, as an unsigned integer; 0 when it is anything else or above limit. */
static inline int read_whole(Cursor *c, uint64_t limit, uint64_t *out)
{
    const unsigned char *p = c->p;
    uint64_t value = 0;
    unsigned d;
    while ((d = (unsigned)*p - '0') < 10) {
        if (value > limit / 10 || (value == limit / 10 && d > limit % 10)) return 0;
        value = value * 10 + d;
        p++;
    }
    if (p == c->p || !token_ends_at(c, p)) return 0;
    c->p = p;
    *out = value;
    return 1;
}

/* A line holding exactly one whole number (a count). */
static int count_line(Cursor *c, uint64_t limit, uint64_t *out)
{
    return token_follows(c) && read_whole(c, limit, out) && line_ends(c);
}

/* A line of exactly n numbers. */
static inline int number_line(Cursor *c, double *out, int n)
{
    for (int i = 0; i < n; i++) {
        if (!token_follows(c) || !read_number(c, out + i)) return 0;
    }
    return line_ends(c);
}

/* The frames after line 1; 0 as soon as anything does not follow the format. */
static int parse_frames(Cursor *c, uint64_t frames, int64_t *counts, uint64_t *ids,
                        double *info, double *joints, Py_ssize_t capacity, Py_ssize_t *bodies)
{
    Py_ssize_t total = 0;
    for (uint64_t f = 0; f < frames; f++) {
        uint64_t n, joint_count;
        if (!count_line(c, (uint64_t)(capacity - total), &n)) return 0;
        counts[f] = (int64_t)n;
        for (uint64_t b = 0; b < n; b++, total++) {
            if (!token_follows(c) || !read_whole(c, UINT64_MAX, ids + total)) return 0;
            if (!number_line(c, info + total * INFO_FIELDS, INFO_FIELDS)) return 0;
            if (!count_line(c, 1000, &joint_count) || joint_count != NUM_JOINTS) return 0;
            double *out = joints + total * (NUM_JOINTS * JOINT_FIELDS);
            for (int j = 0; j < NUM_JOINTS; j++) {
                if (!number_line(c, out + j * JOINT_FIELDS, JOINT_FIELDS)) return 0;
            }
        }
    }
    /* After the last frame: whitespace only. */
    while (kind[*c->p] == BLANK || kind[*c->p] == NEWLINE) c->p++;
    *bodies = total;
    return c->p == c->end;
}

/* The number of bodies the count lines announce, skipping 27 lines per body: the exact size of
 * the body arrays for a well-formed file (fresh memory costs a page fault per page touched, so
 * none is reserved in vain). Where the file breaks the format it stops and returns what it has
 * counted; the parse then fails at or before that point. At most limit. */
static Py_ssize_t count_bodies(Cursor c, uint64_t frames, Py_ssize_t limit)
{
    Py_ssize_t total = 0;
    for (uint64_t f = 0; f < frames; f++) {
        uint64_t n;
        if (!count_line(&c, (uint64_t)(limit - total), &n)) break;
        total += (Py_ssize_t)n;
        for (uint64_t line = 0; line < n * BODY_LINES; line++) {
            const unsigned char *next = memchr(c.p, '\n', (size_t)(c.end - c.p));
            if (!next) return total;
            c.p = next + 1;
        }
    }
    return total;
}

static PyObject *new_array(Py_ssize_t items, Py_ssize_t item_size)
{
    return PyByteArray_FromStringAndSize(NULL, items * item_size);
}

static PyObject *parse(PyObject *module, PyObject *args)
{
    Cursor c;
    uint64_t frames;
    Py_ssize_t size, capacity, bodies = 0;
    PyObject *data, *counts = NULL, *ids = NULL, *info = NULL, *joints = NULL;
    int ok, allow_nonfinite = 0;
    (void)module;
    if (!PyArg_ParseTuple(args, "O|p:parse", &data, &allow_nonfinite)) return NULL;
    if (!PyBytes_Check(data)) {
        /* The parser relies on the NUL that ends every bytes object's buffer. */
        PyErr_SetString(PyExc_TypeError, "parse() needs a bytes object");
        return NULL;
    }
    size = PyBytes_GET_SIZE(data);
    c.p = (const unsigned char *)PyBytes_AS_STRING(data);
    c.end = c.p + size;
    c.released = NULL;
    c.allow_nonfinite = allow_nonfinite;
    /* Line 1: the frame count; every frame takes at least 2 bytes ("0\n"). */
    if (!count_line(&c, (uint64_t)size / 2 + 1, &frames)) Py_RETURN_NONE;
    capacity = count_bodies(c, frames, size / MIN_BODY_BYTES + 1);
    counts = new_array((Py_ssize_t)frames, sizeof(int64_t));
    ids = new_array(capacity, sizeof(uint64_t));
    info = new_array(capacity, INFO_FIELDS * sizeof(double));
    joints = new_array(capacity, NUM_JOINTS * JOINT_FIELDS * sizeof(double));
    if (!counts || !ids || !info || !joints) goto fail;
    /* The buffers are ours and the data is immutable: other threads may run meanwhile. */
    c.released = PyEval_SaveThread();
    ok = parse_frames(&c, frames, (int64_t *)PyByteArray_AS_STRING(counts),
                      (uint64_t *)PyByteArray_AS_STRING(ids), (double *)PyByteArray_AS_STRING(info),
                      (double *)PyByteArray_AS_STRING(joints), capacity, &bodies);
    PyEval_RestoreThread(c.released);
    if (!ok) {
        Py_DECREF(counts);
        Py_DECREF(ids);
        Py_DECREF(info);
        Py_DECREF(joints);
        Py_RETURN_NONE;
    }
    if (PyByteArray_Resize(ids, bodies * (Py_ssize_t)sizeof(uint64_t)) < 0 ||
        PyByteArray_Resize(info, bodies * INFO_FIELDS * (Py_ssize_t)sizeof(double)) < 0 ||
        PyByteArray_Resize(joints,
                           bodies * NUM_JOINTS * JOINT_FIELDS * (Py_ssize_t)sizeof(double)) < 0)
        goto fail;
    return Py_BuildValue("(NNNN)", counts, ids, info, joints);
fail:
    Py_XDECREF(counts);
    Py_XDECREF(ids);
    Py_XDECREF(info);
    Py_XDECREF(joints);
    return NULL;
}

static PyMethodDef methods[] = {
    {"parse", parse, METH_VARARGS,
     "parse(data: bytes, allow_nonfinite: bool = False) -> (counts, ids, info, joints) "
     "bytearrays, or None when the file does not follow the format (or spells a number "
     "unusually, or holds a value that overflows to inf unless allow_nonfinite): the exact scan "
     "then decides."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fastparse_module = {
    PyModuleDef_HEAD_INIT,
    "_fastparse",
    "One-pass exact C parser of NTU .skeleton files (fast path of xmkd.ntu.skeleton_file).",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__fastparse(void)
{
    for (int i = '0'; i <= '9'; i++) kind[i] = DIGIT;
    kind[' '] = kind['\t'] = kind['\r'] = kind['\v'] = kind['\f'] = BLANK;
    kind['\n'] = NEWLINE;
    return PyModule_Create(&fastparse_module);
}
