/* Fast path of the TenSet importer: one auto_scheduler measure-record line in, its fields out.
 *
 * scan_record(line: bytes) -> tuple | None
 *
 * Returns (task_key, trace, costs, mean, error_no, timestamp, version) where
 *   task_key  = the raw JSON text of the workload key and target strings, `"wk", "target"`
 *               (a cache key; the caller decodes it with orjson once per distinct task),
 *   trace     = the steps list as compact JSON, byte-identical to orjson.dumps(steps),
 *   costs     = list of floats for a measured record (error_no 0), else [],
 *   mean      = their mean (summed left to right, as Python's sum() of floats) or None,
 *   error_no  = int, timestamp = float, version = raw bytes of "v" or None.
 *
 * It returns None for any line it does not fully understand: invalid JSON, unknown or
 * duplicate keys, non-ASCII bytes, \u escapes, floats or objects inside the steps (orjson
 * re-formats floats and keeps only the last of duplicate keys), a number orjson would refuse
 * (one that overflows a double), a bad or missing cost, costs whose sum overflows, ... The caller
 * then takes the reference path (orjson + tensorcost.records.tenset.parse_line), which gives the
 * precise `path:line: reason` or imports the line. So this module only ever accepts a strict
 * subset of what the reference path accepts, and for that subset it must produce exactly the
 * same fields: tests/records/test_recscan.py checks both on the real files, on edge cases and on
 * random corruptions, and benchmarks/tenset_fuzz.py on a million generated lines.
 *
 * Why C: orjson builds a Python object for every list and number of a ~900-byte line only for
 * the importer to serialize the steps again; scanning the bytes once took 3.5-3.7 us a line
 * where the decode and re-serialization took about 8 (benchmarks/tenset_parse_profile.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>
#if defined(__GLIBC__)
#include <locale.h>
static locale_t c_locale;  /* strtod_l in the "C" locale: correctly rounded, and not Python's slower big-number dtoa */
#endif

#define MAX_DEPTH 64   /* steps nest 3 deep; anything deeper goes to the reference path */
#define MAX_COSTS 1024

typedef struct {
    const char *p;
    const char *end;
    char *out;   /* compact copy of the value being scanned, or NULL */
} Scan;

static inline void skip_ws(Scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static inline int expect(Scan *s, char c)
{
    skip_ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return 0;
    }
    return -1;
}

static inline void emit(Scan *s, const char *from, Py_ssize_t n)
{
    if (s->out) {
        memcpy(s->out, from, (size_t)n);
        s->out += n;
    }
}

/* A string token at s->p. With allow_escapes 0 any backslash rejects the line (inside the
 * copied steps an escape could be spelled differently from orjson's output). */
static int scan_string(Scan *s, int allow_escapes)
{
    const char *start = s->p;
    if (s->p >= s->end || *s->p != '"')
        return -1;
    s->p++;
    while (s->p < s->end) {
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            s->p++;
            emit(s, start, s->p - start);
            return 0;
        }
        if (c < 0x20 || c >= 0x80)  /* control characters are invalid; non-ASCII: reference path */
            return -1;
        if (c == '\\') {
            if (!allow_escapes || s->p + 1 >= s->end)
                return -1;
            c = (unsigned char)s->p[1];
            if (!(c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't'))
                return -1;  /* includes \u: surrogates are the reference path's business */
            s->p += 2;
            continue;
        }
        s->p++;
    }
    return -1;
}

/* A JSON number at s->p. *is_int tells whether it has neither fraction nor exponent;
 * *canonical whether orjson would print it back with the same bytes (a short integer, not -0). */
static int scan_number(Scan *s, int *is_int, int *canonical)
{
    const char *start = s->p;
    int digits = 0, frac = 0, exponent = 0;
    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (s->p >= s->end)
        return -1;
    if (*s->p == '0') {
        s->p++;
        digits = 1;
    } else if (*s->p >= '1' && *s->p <= '9') {
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
            s->p++;
            digits++;
        }
    } else {
        return -1;
    }
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        frac = 1;
        if (s->p >= s->end || !(*s->p >= '0' && *s->p <= '9'))
            return -1;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        frac = 1;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (s->p >= s->end || !(*s->p >= '0' && *s->p <= '9'))
            return -1;
        int exp_negative = s->p[-1] == '-';
        const char *exp_start = s->p;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
            exponent = exponent * 10 + (*s->p - '0');
            s->p++;
        }
        if (s->p - exp_start > 2)
            return -1;  /* orjson refuses numbers that overflow a double: leave e308 and up to it */
        if (exp_negative)
            exponent = -exponent;
    }
    /* The value is below 10^(digits + exponent): at most 10^308 is finite for certain; anything
     * that might overflow (1 followed by 250 digits, e99) is orjson's to refuse, not ours. */
    if (digits > 300 || digits + exponent > 308)
        return -1;
    *is_int = !frac;
    *canonical = !frac && digits <= 15 && !(start[0] == '-' && start[1] == '0');
    emit(s, start, s->p - start);
    return 0;
}

static int scan_value(Scan *s, int depth);

static int scan_container(Scan *s, int depth, char close)
{
    int is_object = close == '}';
    emit(s, s->p, 1);
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        emit(s, s->p, 1);
        s->p++;
        return 0;
    }
    for (;;) {
        if (is_object) {
            skip_ws(s);
            if (scan_string(s, s->out == NULL) < 0 || expect(s, ':') < 0)
                return -1;
            emit(s, ":", 1);
        }
        if (scan_value(s, depth + 1) < 0)
            return -1;
        skip_ws(s);
        if (s->p >= s->end)
            return -1;
        if (*s->p == ',') {
            emit(s, ",", 1);
            s->p++;
            continue;
        }
        if (*s->p == close) {
            emit(s, s->p, 1);
            s->p++;
            return 0;
        }
        return -1;
    }
}

/* Any JSON value, validated; copied compactly when s->out is set. */
static int scan_value(Scan *s, int depth)
{
    int is_int, canonical;
    if (depth > MAX_DEPTH)
        return -1;
    skip_ws(s);
    if (s->p >= s->end)
        return -1;
    switch (*s->p) {
    case '[':
        return scan_container(s, depth, ']');
    case '{':
        if (s->out)
            return -1;  /* an object in the steps: orjson would keep only the last of duplicate keys */
        return scan_container(s, depth, '}');
    case '"':
        return scan_string(s, s->out == NULL);
    case 't':
    case 'f':
    case 'n': {
        static const char *words[] = {"true", "false", "null"};
        for (int i = 0; i < 3; i++) {
            size_t n = strlen(words[i]);
            if ((size_t)(s->end - s->p) >= n && memcmp(s->p, words[i], n) == 0) {
                emit(s, s->p, (Py_ssize_t)n);
                s->p += n;
                return 0;
            }
        }
        return -1;
    }
    default:
        if (scan_number(s, &is_int, &canonical) < 0)
            return -1;
        return (s->out && !canonical) ? -1 : 0;
    }
}

/* The rest of an array whose remaining elements are not used: validated up to its ']'. */
static int skip_rest_of_array(Scan *s)
{
    for (;;) {
        skip_ws(s);
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            return 0;
        }
        if (expect(s, ',') < 0 || scan_value(s, 2) < 0)
            return -1;
    }
}

static const double POW10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Clinger's fast path: a decimal with at most 15 significant digits and a power of ten up to
 * 22 is one exact integer times or divided by one exact power of ten, and IEEE multiplication
 * and division round correctly, so the result equals a correctly rounded parse. Returns 0 when
 * the literal is outside that case. Costs as TVM logs them (8.75e-06) are inside it. */
static int fast_decimal(const char *p, const char *end, double *v)
{
    int neg = 0, digits = 0, exp10 = 0, exp_sign = 1, e = 0;
    unsigned long long m = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (m || *p != '0')
            digits++;
        m = m * 10 + (unsigned)(*p - '0');
        if (digits > 15)
            return 0;
    }
    if (p < end && *p == '.') {
        for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
            if (m || *p != '0')
                digits++;
            m = m * 10 + (unsigned)(*p - '0');
            exp10--;
            if (digits > 15)
                return 0;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (*p == '+' || *p == '-')
            exp_sign = *p++ == '-' ? -1 : 1;
        for (; p < end && *p >= '0' && *p <= '9'; p++)
            e = e * 10 + (*p - '0');  /* at most 2 digits: scan_number checked */
    }
    exp10 += exp_sign * e;
    double d = (double)m;  /* exact: m < 10^15 < 2^53 */
    if (exp10 < -22 || exp10 > 22)
        return 0;
    d = exp10 < 0 ? d / POW10[-exp10] : d * POW10[exp10];
    *v = neg ? -d : d;
    return 1;
}

/* A number whose value we need: returns it through *v, correctly rounded (as orjson and float()). */
static int number_value(Scan *s, double *v, int *is_int)
{
    int canonical;
    char buf[64];
    skip_ws(s);
    const char *start = s->p;
    if (scan_number(s, is_int, &canonical) < 0)
        return -1;
    Py_ssize_t n = s->p - start;
    if (n >= (Py_ssize_t)sizeof(buf) || (*is_int && !canonical))
        return -1;  /* long literals: the reference path */
    if (fast_decimal(start, s->p, v))
        return 0;
    memcpy(buf, start, (size_t)n);
    buf[n] = '\0';
#if defined(__GLIBC__)
    if (c_locale) {
        *v = strtod_l(buf, NULL, c_locale);  /* overflow gives +-inf, checked by the caller */
        return 0;
    }
#endif
    *v = PyOS_string_to_double(buf, NULL, NULL);  /* overflow gives +-inf, checked by the caller */
    if (*v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return 0;
}

typedef struct {
    const char *key_start, *key_end;     /* `"wk", "target"` */
    char *trace_out, *trace_end;  /* where the compact steps go, and their end */
    double costs[MAX_COSTS];
    int n_costs, costs_numeric, costs_float;
    long long error_no;
    double timestamp;
    const char *version;  /* points at the opening quote, or NULL */
    Py_ssize_t version_len;
} Record;

/* "i": [[workload_key, target, ...], [stages, steps]] */
static int scan_input(Scan *s, Record *r)
{
    if (expect(s, '[') < 0 || expect(s, '[') < 0)
        return -1;
    skip_ws(s);
    r->key_start = s->p;
    if (scan_string(s, 1) < 0 || expect(s, ',') < 0)
        return -1;
    skip_ws(s);
    if (scan_string(s, 1) < 0)
        return -1;
    r->key_end = s->p;
    if (skip_rest_of_array(s) < 0)  /* hardware_params, target_host, ... */
        return -1;
    if (expect(s, ',') < 0 || expect(s, '[') < 0 || scan_value(s, 2) < 0 || expect(s, ',') < 0)
        return -1;
    skip_ws(s);
    if (s->p >= s->end || *s->p != '[')
        return -1;
    s->out = r->trace_out;  /* the compact copy is made while validating, in one pass */
    if (scan_value(s, 2) < 0)  /* a float or an escape in the steps: orjson would re-spell it */
        return -1;
    r->trace_end = s->out;
    s->out = NULL;
    return (expect(s, ']') < 0 || expect(s, ']') < 0) ? -1 : 0;
}

/* "r": [costs, error_no, all_cost, timestamp, ...] */
static int scan_result(Scan *s, Record *r)
{
    int is_int;
    double v;
    if (expect(s, '[') < 0 || expect(s, '[') < 0)
        return -1;
    r->n_costs = 0;
    r->costs_numeric = 1;
    r->costs_float = 1;
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
    } else {
        for (;;) {
            skip_ws(s);
            if (s->p < s->end && (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))) {
                if (number_value(s, &v, &is_int) < 0)
                    return -1;
                if (r->n_costs >= MAX_COSTS)
                    return -1;
                r->costs[r->n_costs++] = v;
                if (is_int)
                    r->costs_float = 0;  /* orjson keeps ints as ints: the reference path decides */
            } else {
                if (scan_value(s, 3) < 0)
                    return -1;
                r->costs_numeric = 0;
            }
            skip_ws(s);
            if (s->p < s->end && *s->p == ',') {
                s->p++;
                continue;
            }
            if (expect(s, ']') < 0)
                return -1;
            break;
        }
    }
    if (expect(s, ',') < 0 || number_value(s, &v, &is_int) < 0 || !is_int || v < -2147483648.0 || v > 2147483647.0)
        return -1;  /* error_no is stored as int32 */
    r->error_no = (long long)v;
    if (expect(s, ',') < 0 || scan_value(s, 2) < 0 || expect(s, ',') < 0)
        return -1;
    skip_ws(s);
    if (number_value(s, &r->timestamp, &is_int) < 0)
        return -1;
    return skip_rest_of_array(s);  /* fields after the timestamp */
}

static int scan_line(Scan *s, Record *r)
{
    int seen_i = 0, seen_r = 0, seen_v = 0;
    r->version = NULL;
    if (expect(s, '{') < 0)
        return -1;
    for (;;) {
        skip_ws(s);
        const char *k = s->p;
        if (scan_string(s, 0) < 0 || s->p - k != 3 || expect(s, ':') < 0)
            return -1;  /* only the one-letter keys i, r, v */
        if (k[1] == 'i' && !seen_i) {
            seen_i = 1;
            if (scan_input(s, r) < 0)
                return -1;
        } else if (k[1] == 'r' && !seen_r) {
            seen_r = 1;
            if (scan_result(s, r) < 0)
                return -1;
        } else if (k[1] == 'v' && !seen_v) {
            seen_v = 1;
            skip_ws(s);
            r->version = s->p;
            if (scan_string(s, 0) < 0)
                return -1;
            r->version_len = s->p - r->version;
        } else {
            return -1;
        }
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (expect(s, '}') < 0)
            return -1;
        break;
    }
    skip_ws(s);
    return (s->p == s->end && seen_i && seen_r) ? 0 : -1;
}

static PyObject *scan_record(PyObject *Py_UNUSED(self), PyObject *arg)
{
    Record r;
    Scan s;
    char *buf;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(arg, &buf, &len) < 0)
        return NULL;
    s.p = buf;
    s.end = buf + len;
    s.out = NULL;
    PyObject *trace = PyBytes_FromStringAndSize(NULL, len);  /* shrunk to the steps' size below */
    if (!trace)
        return NULL;
    r.trace_out = PyBytes_AS_STRING(trace);
    if (scan_line(&s, &r) < 0)
        goto not_ours;
    int measured = r.error_no == 0;
    double total = 0.0;
    if (measured) {  /* the reference path's checks; any doubt goes back to it */
        if (r.n_costs == 0 || !r.costs_numeric || !r.costs_float)
            goto not_ours;
        for (int i = 0; i < r.n_costs; i++) {
            if (!(r.costs[i] > 0.0) || isinf(r.costs[i]))
                goto not_ours;
            total += r.costs[i];  /* left to right, as Python 3.11's sum() of floats */
        }
        if (!isfinite(total))
            goto not_ours;  /* finite costs whose sum overflows: the reference path rejects them */
    }
    if (!isfinite(r.timestamp))
        goto not_ours;
    if (_PyBytes_Resize(&trace, r.trace_end - PyBytes_AS_STRING(trace)) < 0)
        return NULL;

    PyObject *mean = Py_None, *version = Py_None;
    Py_INCREF(Py_None);
    Py_INCREF(Py_None);
    PyObject *costs = PyList_New(measured ? r.n_costs : 0);  /* failed measurements keep no latencies */
    if (!costs)
        goto fail;
    if (measured) {
        for (int i = 0; i < r.n_costs; i++) {
            PyObject *f = PyFloat_FromDouble(r.costs[i]);
            if (!f)
                goto fail;
            PyList_SET_ITEM(costs, i, f);
        }
        Py_DECREF(mean);
        mean = PyFloat_FromDouble(total / r.n_costs);
        if (!mean)
            goto fail;
    }
    if (r.version) {
        Py_DECREF(version);
        version = PyBytes_FromStringAndSize(r.version + 1, r.version_len - 2);
        if (!version)
            goto fail;
    }
    PyObject *key = PyBytes_FromStringAndSize(r.key_start, r.key_end - r.key_start);
    if (!key)
        goto fail;
    return Py_BuildValue("(NNNNLdN)", key, trace, costs, mean, r.error_no, r.timestamp, version);
not_ours:
    Py_DECREF(trace);
    Py_RETURN_NONE;
fail:
    Py_DECREF(trace);
    Py_XDECREF(costs);
    Py_XDECREF(mean);
    Py_XDECREF(version);
    return NULL;
}

static PyMethodDef methods[] = {
    {"scan_record", scan_record, METH_O, "Fields of one measure-record line, or None to take the reference path."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_recscan", "C fast path of the TenSet importer.", -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__recscan(void)
{
#if defined(__GLIBC__)
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);  /* NULL: fall back to PyOS_string_to_double */
#endif
    return PyModule_Create(&module);
}
