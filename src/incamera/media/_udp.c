/*
 * incamera.media._udp: the receive half of udp_batch.BatchUdp in C.
 *
 * Why C: reading a recvmmsg batch in Python (a struct unpack, two slices and a dictionary
 * lookup per datagram, through ctypes and memoryviews) cost ~1.5 us per datagram, a few per
 * cent of a media worker's time at fan-out 10. This does the same on the same buffers:
 * one recvmmsg into BatchUdp's preallocated messages, then per datagram its bytes and its
 * sender's address, looked up in BatchUdp's cache (new addresses are decoded by the Python
 * ``decode`` callable and cached). Datagrams the kernel truncated are counted and skipped.
 * Nothing in the payload is read here.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>
#include <errno.h>
#include <sys/socket.h>

#define CACHE_LIMIT 65536 /* addresses kept, as BatchUdp.recv */

/*
 * recv(fd, msgs, batch, area, recv_size, names, name_size, cache, decode)
 *   -> (list of (bytes, address), truncated datagrams)
 * msgs/area/names: addresses of BatchUdp's mmsghdr array, receive area and name area.
 */
static PyObject *udp_recv(PyObject *Py_UNUSED(module), PyObject *args) {
    int fd;
    PyObject *msgs_obj, *area_obj, *names_obj, *cache, *decode;
    Py_ssize_t batch, recv_size, name_size;
    if (!PyArg_ParseTuple(args, "iOnOnOnO!O", &fd, &msgs_obj, &batch, &area_obj, &recv_size,
                          &names_obj, &name_size, &PyDict_Type, &cache, &decode))
        return NULL;
    struct mmsghdr *msgs = PyLong_AsVoidPtr(msgs_obj);
    const char *area = PyLong_AsVoidPtr(area_obj);
    const char *names = PyLong_AsVoidPtr(names_obj);
    if (PyErr_Occurred()) return NULL;
    if (msgs == NULL || area == NULL || names == NULL || batch <= 0 || batch > 1024 ||
        recv_size <= 0 || name_size <= 0) {
        PyErr_SetString(PyExc_ValueError, "bad receive buffers");
        return NULL;
    }
    int count = recvmmsg(fd, msgs, (unsigned int)batch, MSG_DONTWAIT, NULL);
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    Py_ssize_t truncated = 0;
    for (int i = 0; i < count; i++) {
        struct msghdr *hdr = &msgs[i].msg_hdr;
        socklen_t namelen = hdr->msg_namelen;
        int flags = hdr->msg_flags;
        unsigned int length = msgs[i].msg_len;
        hdr->msg_namelen = (socklen_t)name_size; /* the next call needs the buffer's size */
        if (flags & MSG_TRUNC) {
            truncated++;
            continue;
        }
        if ((Py_ssize_t)namelen > name_size || (Py_ssize_t)length > recv_size) {
            truncated++;
            continue;
        }
        PyObject *key = PyBytes_FromStringAndSize(names + (Py_ssize_t)i * name_size, namelen);
        if (key == NULL) goto fail;
        PyObject *addr = PyDict_GetItemWithError(cache, key); /* borrowed */
        if (addr != NULL) {
            Py_INCREF(addr);
        } else if (PyErr_Occurred()) {
            Py_DECREF(key);
            goto fail;
        } else {
            addr = PyObject_CallOneArg(decode, key);
            if (addr == NULL) {
                Py_DECREF(key);
                goto fail;
            }
            if (PyDict_GET_SIZE(cache) > CACHE_LIMIT) PyDict_Clear(cache);
            if (PyDict_SetItem(cache, key, addr) < 0) {
                Py_DECREF(key);
                Py_DECREF(addr);
                goto fail;
            }
        }
        Py_DECREF(key);
        PyObject *data = PyBytes_FromStringAndSize(area + (Py_ssize_t)i * recv_size, length);
        if (data == NULL) {
            Py_DECREF(addr);
            goto fail;
        }
        PyObject *item = PyTuple_New(2);
        if (item == NULL) {
            Py_DECREF(data);
            Py_DECREF(addr);
            goto fail;
        }
        PyTuple_SET_ITEM(item, 0, data); /* steals */
        PyTuple_SET_ITEM(item, 1, addr);
        int rc = PyList_Append(out, item);
        Py_DECREF(item);
        if (rc < 0) goto fail;
    }
    return Py_BuildValue("(Nn)", out, truncated);
fail:
    /* the remaining messages' address lengths must still be reset for the next call */
    for (int i = 0; i < count; i++) msgs[i].msg_hdr.msg_namelen = (socklen_t)name_size;
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"recv", udp_recv, METH_VARARGS, "One recvmmsg batch (see udp_batch.BatchUdp.recv)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "incamera.media._udp",
    .m_doc = "The receive half of udp_batch.BatchUdp in C.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__udp(void) { return PyModule_Create(&module); }
