/*
 * incamera.media._fanout: the steady-state fan-out kernel in C.
 *
 * Why C: forwarding one packet to one subscriber is ~25 small steps (rewrite the RTP
 * header, record the NACK history and the transport-wide send record, copy the packet into
 * a send slot, SRTP-protect it, queue it for sendmmsg). Written in Python (transport.py,
 * Transport.fan_out, which stays the reference and the fallback) they cost ~5 us of
 * interpreter time per forwarded packet, more than the AES-GCM and as much as the kernel's
 * whole send path; here they cost well under a microsecond. The kernel does exactly what
 * Transport.fan_out does, on the same Python-visible state: the consumer's history and
 * state arrays and the transport's send record (array.array, written through the buffer
 * protocol, so no Python object is touched per packet), the worker's send slots and their
 * mmsghdr/iovec arrays (udp_batch.BatchUdp). SRTP stays libsrtp's: pylibsrtp's compiled binding hands over the
 * address of srtp_protect, which is called on the slot in place.
 *
 * No network input is parsed here: the template was built by the producer from a packet
 * already parsed and authenticated, and its length is checked against the slot size.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* libsrtp 2: srtp_err_status_t srtp_protect(srtp_t ctx, void *rtp_hdr, int *len_ptr) */
typedef int (*protect_fn)(void *ctx, void *rtp_hdr, int *len_ptr);

/* The template must reach past the transport-wide sequence number (bytes 17-18). */
#define MIN_TEMPLATE 20

/* Cells of Consumer._state (consumer.py) */
enum { LAST_IN_SEQ, LAST_SEQ, LAST_TS, PACKETS, OCTETS, STATE_FIELDS };

typedef struct {
    PyObject *consumer;
    PyObject *rewriter; /* NULL when picture ids are not rewritten */
    PyObject *keep;     /* the SrtpSession that owns ctx and size */
    Py_buffer hist_seq, hist_src, hist_ts; /* int64 rings */
    Py_buffer state, sent_at, seq_cell; /* int64[STATE_FIELDS], double[1], int64[1] */
    Py_buffer sent_seq, sent_time, sent_size; /* int64, double, int64 rings */
    uint32_t ssrc, seq_offset, ts_offset;
    void *ctx;
    int *size;
    void *name;
    socklen_t name_len;
} Entry;

typedef struct {
    PyObject_HEAD
    Entry *entries;
    Py_ssize_t count;
    PyObject *io;      /* udp_batch.BatchUdp: .pending, .flush() */
    PyObject *views;   /* list of the slots' memoryviews (for the VP8 rewriter) */
    PyObject *rewrite; /* callable(rewriter, view, payload_offset, keyframe) */
    PyObject *counters;      /* the worker's Counters: rtp_sent */
    PyObject *request_flush; /* callable(): the worker sends the slots soon */
    PyObject *on_errors;     /* callable(count, libsrtp status): protect failures */
    char *slots_base;
    Py_ssize_t slot_size, slots, max_template;
    unsigned char twcc_element;
    struct mmsghdr *msgs;
    struct iovec *iovs;
    protect_fn protect;
    uint64_t hist_mask, sent_mask;
} Table;

static PyObject *s_pending, *s_flush, *s_rtp_sent;

static void entry_release(Entry *e) {
    Py_buffer *buffers[] = {&e->hist_seq, &e->hist_src, &e->hist_ts, &e->state,
                            &e->sent_at,  &e->seq_cell, &e->sent_seq, &e->sent_time,
                            &e->sent_size};
    for (size_t i = 0; i < sizeof(buffers) / sizeof(buffers[0]); i++) {
        if (buffers[i]->obj != NULL) PyBuffer_Release(buffers[i]);
    }
    Py_CLEAR(e->consumer);
    Py_CLEAR(e->rewriter);
    Py_CLEAR(e->keep);
}

/* A writable, C-contiguous array of 8-byte items of kind ``kind`` ('q' or 'd'): a ring
   (``length`` 0: any power of two) or ``length`` cells. */
static int get_array(PyObject *obj, Py_buffer *view, char kind, Py_ssize_t length,
                     const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    const char *fmt = view->format;
    if (fmt[0] == '@' || fmt[0] == '=') fmt++;
    int ok = kind == 'd' ? (fmt[0] == 'd' && view->itemsize == 8)
                         : ((fmt[0] == 'q' || fmt[0] == 'l') && view->itemsize == 8);
    Py_ssize_t n = view->len / (view->itemsize ? view->itemsize : 1);
    int sized = length ? n == length : (n > 0 && (n & (n - 1)) == 0);
    if (!ok || fmt[1] != '\0' || !sized) {
        PyErr_Format(PyExc_TypeError, "%s must be an array of 8-byte '%c' items, %s", what,
                     kind, length ? "of the right length" : "a power of two long");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static Py_ssize_t items(Py_buffer *view) { return view->len / view->itemsize; }

static int as_u32(PyObject *obj, uint32_t *out) {
    unsigned long long v = PyLong_AsUnsignedLongLongMask(obj);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    *out = (uint32_t)v;
    return 0;
}

static void *as_pointer(PyObject *obj) {
    void *p = PyLong_AsVoidPtr(obj);
    if (p == NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "a null pointer");
    return p;
}

/* One entry from a fan-out tuple (consumer.py FastEntry + Transport.fast_parts). */
static int entry_init(Entry *e, PyObject *tuple, Table *t, Py_ssize_t index) {
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) != 19) {
        PyErr_SetString(PyExc_TypeError, "a fan-out entry must be a 19-tuple");
        return -1;
    }
#define ITEM(i) PyTuple_GET_ITEM(tuple, (i))
    e->consumer = Py_NewRef(ITEM(0));
    if (get_array(ITEM(1), &e->hist_seq, 'q', 0, "the sequence history") < 0) return -1;
    if (get_array(ITEM(2), &e->hist_src, 'q', 0, "the source history") < 0) return -1;
    if (get_array(ITEM(3), &e->hist_ts, 'q', 0, "the timestamp history") < 0) return -1;
    if (get_array(ITEM(4), &e->state, 'q', STATE_FIELDS, "the consumer state") < 0) return -1;
    if (get_array(ITEM(5), &e->sent_at, 'd', 1, "the last send time") < 0) return -1;
    if (as_u32(ITEM(6), &e->ssrc) < 0) return -1;
    if (as_u32(ITEM(7), &e->seq_offset) < 0) return -1;
    if (as_u32(ITEM(8), &e->ts_offset) < 0) return -1;
    if (ITEM(9) != Py_None) e->rewriter = Py_NewRef(ITEM(9));
    if (get_array(ITEM(10), &e->seq_cell, 'q', 1, "the transport-wide sequence") < 0) return -1;
    if (get_array(ITEM(11), &e->sent_seq, 'q', 0, "the send record") < 0) return -1;
    if (get_array(ITEM(12), &e->sent_time, 'd', 0, "the send times") < 0) return -1;
    if (get_array(ITEM(13), &e->sent_size, 'q', 0, "the send sizes") < 0) return -1;
    if ((e->ctx = as_pointer(ITEM(14))) == NULL) return -1;
    if ((e->size = (int *)as_pointer(ITEM(15))) == NULL) return -1;
    if ((e->name = as_pointer(ITEM(16))) == NULL) return -1;
    uint32_t name_len;
    if (as_u32(ITEM(17), &name_len) < 0) return -1;
    e->name_len = (socklen_t)name_len;
    e->keep = Py_NewRef(ITEM(18));
#undef ITEM
    Py_ssize_t hist = items(&e->hist_seq), sent = items(&e->sent_seq);
    if (items(&e->hist_src) != hist || items(&e->hist_ts) != hist ||
        items(&e->sent_time) != sent || items(&e->sent_size) != sent) {
        PyErr_SetString(PyExc_ValueError, "history arrays of different lengths");
        return -1;
    }
    if (index == 0) {
        t->hist_mask = (uint64_t)hist - 1;
        t->sent_mask = (uint64_t)sent - 1;
    } else if ((uint64_t)hist - 1 != t->hist_mask || (uint64_t)sent - 1 != t->sent_mask) {
        PyErr_SetString(PyExc_ValueError, "entries with histories of different lengths");
        return -1;
    }
    return 0;
}

static void table_dealloc(Table *t) {
    if (t->entries != NULL) {
        for (Py_ssize_t i = 0; i < t->count; i++) entry_release(&t->entries[i]);
        PyMem_Free(t->entries);
    }
    Py_XDECREF(t->io);
    Py_XDECREF(t->views);
    Py_XDECREF(t->rewrite);
    Py_XDECREF(t->counters);
    Py_XDECREF(t->request_flush);
    Py_XDECREF(t->on_errors);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

/*
 * Table(entries, io, views, rewrite, slots_base, slot_size, slots, msgs, iovs, protect,
 *       max_template, twcc_element, counters, request_flush, on_errors)
 *   entries: list of fan-out tuples; io: the BatchUdp; views: its slot memoryviews;
 *   rewrite: callable(rewriter, view, payload_offset, keyframe); then the addresses and
 *   sizes of the send area, the mmsghdr and iovec arrays, and srtp_protect; the longest
 *   template a slot takes with the SRTP trailer; the header byte of the TWCC element; the
 *   worker's counters (rtp_sent), its flush request, and what counts protect failures.
 */
static PyObject *table_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *entries, *io, *views, *rewrite, *base, *msgs, *iovs, *protect, *counters;
    PyObject *request_flush, *on_errors;
    Py_ssize_t slot_size, slots, max_template;
    unsigned char twcc_element;
    static char *kwlist[] = {"entries",      "io",       "views",        "rewrite",
                             "slots_base",   "slot_size", "slots",       "msgs",
                             "iovs",         "protect",  "max_template", "twcc_element",
                             "counters",     "request_flush", "on_errors", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!OO!OOnnOOOnbOOO", kwlist, &PyList_Type,
                                     &entries, &io, &PyList_Type, &views, &rewrite, &base,
                                     &slot_size, &slots, &msgs, &iovs, &protect,
                                     &max_template, &twcc_element, &counters, &request_flush,
                                     &on_errors))
        return NULL;
    if (!PyCallable_Check(rewrite) || !PyCallable_Check(request_flush) ||
        !PyCallable_Check(on_errors)) {
        PyErr_SetString(PyExc_TypeError, "rewrite, request_flush and on_errors must be callable");
        return NULL;
    }
    if (slots <= 0 || PyList_GET_SIZE(views) != slots || max_template < MIN_TEMPLATE ||
        max_template > slot_size) {
        PyErr_SetString(PyExc_ValueError, "slots and their views do not match");
        return NULL;
    }
    Table *t = (Table *)type->tp_alloc(type, 0);
    if (t == NULL) return NULL;
    t->io = Py_NewRef(io);
    t->views = Py_NewRef(views);
    t->rewrite = Py_NewRef(rewrite);
    t->counters = Py_NewRef(counters);
    t->request_flush = Py_NewRef(request_flush);
    t->on_errors = Py_NewRef(on_errors);
    t->slot_size = slot_size;
    t->slots = slots;
    t->max_template = max_template;
    t->twcc_element = twcc_element;
    if ((t->slots_base = as_pointer(base)) == NULL || (t->msgs = as_pointer(msgs)) == NULL ||
        (t->iovs = as_pointer(iovs)) == NULL ||
        (t->protect = (protect_fn)as_pointer(protect)) == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(entries);
    t->entries = PyMem_Calloc(n ? n : 1, sizeof(Entry));
    if (t->entries == NULL) {
        Py_DECREF(t);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        t->count = i + 1; /* released by the dealloc even when half built */
        if (entry_init(&t->entries[i], PyList_GET_ITEM(entries, i), t, i) < 0) {
            Py_DECREF(t);
            return NULL;
        }
    }
    return (PyObject *)t;
}

static inline void put16(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static inline void put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static int flush(Table *t, Py_ssize_t pending) {
    PyObject *v = PyLong_FromSsize_t(pending);
    if (v == NULL) return -1;
    int rc = PyObject_SetAttr(t->io, s_pending, v);
    Py_DECREF(v);
    if (rc < 0) return -1;
    PyObject *r = PyObject_CallMethodNoArgs(t->io, s_flush);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

/* counters.rtp_sent += sent */
static int count_sent(Table *t, Py_ssize_t sent) {
    PyObject *old = PyObject_GetAttr(t->counters, s_rtp_sent);
    if (old == NULL) return -1;
    long long value = PyLong_AsLongLong(old);
    Py_DECREF(old);
    if (value == -1 && PyErr_Occurred()) return -1;
    PyObject *v = PyLong_FromLongLong(value + sent);
    if (v == NULL) return -1;
    int rc = PyObject_SetAttr(t->counters, s_rtp_sent, v);
    Py_DECREF(v);
    return rc;
}

/*
 * table(entries, template, seq, timestamp, source, payload_offset, ext_word, keyframe, now)
 * Transport.fan_out, with the same arguments (``entries`` is the table's own, compiled):
 * its loop per entry, then the worker's counters and flush request.
 */
static PyObject *table_call(Table *t, PyObject *call_args, PyObject *kwargs) {
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "the fan-out kernel takes no keyword arguments");
        return NULL;
    }
    if (PyTuple_GET_SIZE(call_args) != 9) {
        PyErr_SetString(PyExc_TypeError, "the fan-out kernel takes 9 arguments");
        return NULL;
    }
    PyObject *const *args = &PyTuple_GET_ITEM(call_args, 1); /* past ``entries`` */
    Py_buffer tpl;
    if (PyObject_GetBuffer(args[0], &tpl, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *result = NULL, *payload_offset_obj = args[4];
    PyObject *keyframe_obj = args[6];
    uint32_t seq, timestamp, ext_word;
    int64_t source;
    Py_ssize_t payload_offset;
    double now;
    Py_ssize_t length = tpl.len, sent = 0, errors = 0;
    int first_rc = 0;
    if (as_u32(args[1], &seq) < 0 || as_u32(args[2], &timestamp) < 0 ||
        as_u32(args[5], &ext_word) < 0)
        goto done;
    source = PyLong_AsLongLong(args[3]);
    if (source == -1 && PyErr_Occurred()) goto done;
    payload_offset = PyLong_AsSsize_t(payload_offset_obj);
    if (payload_offset == -1 && PyErr_Occurred()) goto done;
    now = PyFloat_AsDouble(args[7]);
    if (now == -1.0 && PyErr_Occurred()) goto done;
    if (length < MIN_TEMPLATE || length > t->max_template || payload_offset < 0 ||
        payload_offset > length) {
        PyErr_Format(PyExc_ValueError, "a template of %zd bytes does not fit a send slot", length);
        goto done;
    }
    PyObject *pending_obj = PyObject_GetAttr(t->io, s_pending);
    if (pending_obj == NULL) goto done;
    Py_ssize_t slot = PyLong_AsSsize_t(pending_obj);
    Py_DECREF(pending_obj);
    if (slot < 0 || slot > t->slots) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "io.pending out of range");
        goto done;
    }
    seq &= 0xFFFF;
    const unsigned char *template = tpl.buf;

    for (Py_ssize_t i = 0; i < t->count; i++) {
        Entry *e = &t->entries[i];
        uint32_t out_seq = (seq + e->seq_offset) & 0xFFFF;
        uint32_t out_ts = timestamp + e->ts_offset;
        uint64_t record = out_seq & t->hist_mask;
        ((int64_t *)e->hist_seq.buf)[record] = out_seq;
        ((int64_t *)e->hist_src.buf)[record] = source;
        ((int64_t *)e->hist_ts.buf)[record] = out_ts;
        int64_t *state = e->state.buf;
        state[LAST_IN_SEQ] = seq;
        state[LAST_SEQ] = out_seq;
        state[LAST_TS] = out_ts;
        state[PACKETS] += 1;
        state[OCTETS] += length - payload_offset;
        *(double *)e->sent_at.buf = now;
        if (slot == t->slots) {
            if (flush(t, slot) < 0) goto fail;
            slot = 0;
        }
        unsigned char *view = (unsigned char *)t->slots_base + slot * t->slot_size;
        memcpy(view, template, (size_t)length);
        /* the subscriber transport's TWCC send record (bandwidth.py) */
        int64_t *seq_cell = e->seq_cell.buf;
        int64_t twcc = *seq_cell & 0xFFFF;
        *seq_cell = (twcc + 1) & 0xFFFF;
        uint64_t sent_record = (uint64_t)twcc & t->sent_mask;
        ((int64_t *)e->sent_seq.buf)[sent_record] = twcc;
        ((double *)e->sent_time.buf)[sent_record] = now;
        ((int64_t *)e->sent_size.buf)[sent_record] = length;
        /* the header from byte 2: "!HIIIBH" as transport.py's _pack_head */
        put16(view + 2, out_seq);
        put32(view + 4, out_ts);
        put32(view + 8, e->ssrc);
        put32(view + 12, ext_word);
        view[16] = t->twcc_element;
        put16(view + 17, (uint32_t)twcc);
        if (e->rewriter != NULL) {
            PyObject *r = PyObject_CallFunctionObjArgs(t->rewrite, e->rewriter,
                                                       PyList_GET_ITEM(t->views, slot),
                                                       payload_offset_obj, keyframe_obj, NULL);
            if (r == NULL) goto fail;
            Py_DECREF(r);
        }
        *e->size = (int)length;
        int rc = t->protect(e->ctx, view, e->size);
        if (rc != 0) {
            errors++;
            if (first_rc == 0) first_rc = rc;
            continue;
        }
        t->msgs[slot].msg_hdr.msg_name = e->name;
        t->msgs[slot].msg_hdr.msg_namelen = e->name_len;
        t->iovs[slot].iov_len = (size_t)*e->size;
        slot++;
        sent++;
    }
    {
        PyObject *v = PyLong_FromSsize_t(slot);
        if (v == NULL || PyObject_SetAttr(t->io, s_pending, v) < 0) {
            Py_XDECREF(v);
            goto done;
        }
        Py_DECREF(v);
    }
    if (count_sent(t, sent) < 0) goto done;
    if (errors) {
        PyObject *r = PyObject_CallFunction(t->on_errors, "ni", errors, first_rc);
        if (r == NULL) goto done;
        Py_DECREF(r);
    }
    result = PyObject_CallNoArgs(t->request_flush);
    goto done;
fail:
    {
        /* keep what was queued: the slots before ``slot`` are complete */
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        PyObject *v = PyLong_FromSsize_t(slot);
        if (v != NULL) {
            if (PyObject_SetAttr(t->io, s_pending, v) < 0) PyErr_Clear();
            Py_DECREF(v);
        }
        PyErr_Restore(type, value, traceback);
    }
done:
    PyBuffer_Release(&tpl);
    return result;
}

static PyObject *table_len(Table *t, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromSsize_t(t->count);
}

static PyMethodDef table_methods[] = {
    {"size", (PyCFunction)table_len, METH_NOARGS, "The number of entries."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "incamera.media._fanout.Table",
    .tp_basicsize = sizeof(Table),
    .tp_dealloc = (destructor)table_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A producer stream's fan-out table, compiled for the C kernel.",
    .tp_methods = table_methods,
    .tp_call = (ternaryfunc)table_call,
    .tp_new = table_new,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "incamera.media._fanout",
    .m_doc = "The steady-state fan-out kernel in C (see fanout_kernel.py).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__fanout(void) {
    if (PyType_Ready(&TableType) < 0) return NULL;
#define INTERN(var, text) \
    if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL;
    INTERN(s_pending, "pending");
    INTERN(s_flush, "flush");
    INTERN(s_rtp_sent, "rtp_sent");
#undef INTERN
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&TableType);
    if (PyModule_AddObject(m, "Table", (PyObject *)&TableType) < 0) {
        Py_DECREF(&TableType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
