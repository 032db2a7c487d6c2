/* image_folder.c: cl_load_image_folder, a dataset of PNG and JPEG files with one
 * subfolder per class (the torchvision ImageFolder layout; docs/data.md).
 *
 * Rules, chosen for determinism and to match what PIL/torchvision give:
 * - classes are the subfolders sorted by name (byte order), labels 0..k-1 in that
 *   order; images are sorted by file name inside each class; entries whose name
 *   starts with '.' are skipped, and so are files that are not .png/.jpg/.jpeg
 *   (case-insensitive). A class folder without images is an error.
 * - the format is recognised from the file's first bytes (the extension only
 *   selects which files are read), so a PNG named .jpg still loads.
 * - channels: the dataset is RGB (c=3) unless every image is greyscale (PNG colour
 *   types grey and grey+alpha, one-component JPEG), then it is grey (c=1). Grey
 *   images in an RGB dataset are replicated into R=G=B; alpha is dropped (as PIL's
 *   convert("RGB")); palettes are expanded; 16-bit samples are scaled to 8 bits
 *   with rounding (v * 255 / 65535).
 * - size: every image must have the first image's size unless resize_h and
 *   resize_w are > 0; then every image of another size is resized with bilinear
 *   interpolation, align_corners=False (half-pixel centres) and no antialiasing,
 *   as torch.nn.functional.interpolate(mode="bilinear", align_corners=False) and
 *   OpenCV INTER_LINEAR, rounded to the nearest integer.
 * - a truncated or corrupt PNG or JPEG is an error naming the file and the
 *   decoder's message: libjpeg's data-loss warnings (premature end, bad Huffman
 *   code, ...) are treated as errors instead of filling the image with grey. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <jerror.h> /* the JWRN_ message codes */
#include <png.h>

#include "util/util.h"

#define MAX_SIDE 16384                /* larger images are refused */
#define MAX_PIXELS (64ll << 20)       /* 64 Mpixels per image */
#define MAX_JPEG_SCANS 1000           /* progressive JPEGs with more scans are refused */


/* ---- listing ------------------------------------------------------------------- */

typedef struct {
    char **names;
    int n, cap;
    int skipped;         /* files passed over (unknown extensions) */
    char first_skipped[256];
} name_list;

static void list_free(name_list *l) {
    for (int i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    *l = (name_list){0};
}

static bool list_push(name_list *l, const char *name) {
    if (l->n == l->cap) {
        int ncap = l->cap ? l->cap * 2 : 64;
        char **nn = realloc(l->names, (size_t)ncap * sizeof *nn);
        if (!nn) return false;
        l->names = nn;
        l->cap = ncap;
    }
    size_t len = strlen(name) + 1;
    if (!(l->names[l->n] = malloc(len))) return false;
    memcpy(l->names[l->n], name, len);
    l->n++;
    return true;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") ||
                   !strcasecmp(dot, ".jpeg"));
}

/* The sorted non-hidden entries of dir: subfolders (dirs) or image files. */
static cl_status list_dir(const char *dir, bool dirs, name_list *out, char *err,
                          size_t errlen) {
    *out = (name_list){0};
    DIR *d = opendir(dir);
    if (!d)
        return cl_errorf(err, errlen, CL_ERR_IO, "%s: cannot open the folder: %s", dir,
                    strerror(errno));
    cl_status st = CL_OK;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno)
                st = cl_errorf(err, errlen, CL_ERR_IO, "%s: cannot list the folder: %s", dir,
                          strerror(errno));
            break;
        }
        if (e->d_name[0] == '.') continue;
        char *p = cl_path_join(dir, e->d_name);
        struct stat sb;
        if (!p) {
            st = cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
            break;
        }
        bool ok = stat(p, &sb) == 0; /* follows symbolic links; dangling ones are skipped */
        free(p);
        if (!ok) continue;
        bool want;
        if (dirs) {
            want = S_ISDIR(sb.st_mode);
        } else {
            want = S_ISREG(sb.st_mode) && has_image_ext(e->d_name);
            if (S_ISREG(sb.st_mode) && !want && out->skipped++ == 0)
                snprintf(out->first_skipped, sizeof out->first_skipped, "%s", e->d_name);
        }
        if (want && !list_push(out, e->d_name)) {
            st = cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
            break;
        }
    }
    closedir(d);
    if (st != CL_OK) {
        list_free(out);
        return st;
    }
    if (out->n > 1) qsort(out->names, (size_t)out->n, sizeof *out->names, cmp_names);
    return CL_OK;
}

/* ---- decoding -------------------------------------------------------------------- */

/* A decoded image: h x w, c = 1 (grey) or 3 (RGB), channels-last. */
typedef struct {
    int h, w, c;
    uint8_t *pix;
} image;

static cl_status check_size(const char *path, long long w, long long h, char *err,
                            size_t errlen) {
    if (w <= 0 || h <= 0 || w > MAX_SIDE || h > MAX_SIDE || w * h > MAX_PIXELS)
        return cl_errorf(err, errlen, CL_ERR_FORMAT,
                    "%s: image of %lldx%lld (HxW): sides must be 1..%d and at most %lld pixels",
                    path, h, w, MAX_SIDE, MAX_PIXELS);
    return CL_OK;
}

typedef struct {
    char msg[256];
} png_err;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_err *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png; /* the library never prints; warnings (ancillary chunks) are ignored */
    (void)msg;
}

/* Decode a PNG whose 8 signature bytes have been read from f. */
static cl_status decode_png(FILE *f, const char *path, image *out, char *err, size_t errlen) {
    png_err pe = {{0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &pe, png_on_error,
                                             png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
    }
    /* Set after setjmp and freed after a longjmp, hence volatile. */
    uint8_t *volatile pix = NULL;
    png_bytep *volatile rows = NULL;
    volatile cl_status st = CL_OK;
    if (setjmp(png_jmpbuf(png))) {
        long pos = ftell(f);
        if (st == CL_OK)
            st = cl_errorf(err, errlen, CL_ERR_FORMAT, "%s: corrupt PNG near byte %ld: %s", path, pos,
                      pe.msg);
        free(pix);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return st;
    }
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    png_set_user_limits(png, MAX_SIDE, MAX_SIDE);
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    if ((st = check_size(path, (long long)w, (long long)h, err, errlen)) != CL_OK)
        png_longjmp(png, 1);
    bool grey = color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA;
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_scale_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int ch = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (ch < 1 || ch > 4 || png_get_bit_depth(png, info) != 8 || rowbytes != (size_t)w * ch) {
        st = cl_errorf(err, errlen, CL_ERR_FORMAT, "%s: unsupported PNG layout (%d channels of %d bits)",
                  path, ch, png_get_bit_depth(png, info));
        png_longjmp(png, 1);
    }
    pix = malloc((size_t)h * rowbytes);
    rows = malloc((size_t)h * sizeof *rows);
    if (!pix || !rows) {
        st = cl_errorf(err, errlen, CL_ERR_NOMEM, "%s: out of memory", path);
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pix + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL); /* the rest of the stream: a cut file fails here */
    /* Grey(+alpha) -> grey, RGB(A) -> RGB: keep the first 1 or 3 channels, in place. */
    int oc = grey ? 1 : 3;
    if (ch != oc) {
        size_t npx = (size_t)w * h;
        for (size_t i = 0; i < npx; i++)
            for (int k = 0; k < oc; k++) pix[i * oc + k] = pix[i * ch + k];
    }
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    *out = (image){.h = (int)h, .w = (int)w, .c = oc, .pix = pix};
    return CL_OK;
}

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jb, 1);
}

/* libjpeg reports damaged data as warnings and fills the rest with grey: those
 * that lose data are errors here; harmless ones (extra bytes, unknown JFIF or Adobe
 * versions, a bad ICC marker) and trace messages are ignored. Never prints. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;
    int code = cinfo->err->msg_code;
    if (code == JWRN_EXTRANEOUS_DATA || code == JWRN_ADOBE_XFORM || code == JWRN_JFIF_MAJOR ||
        code == JWRN_BOGUS_ICC)
        return;
    jpeg_on_error(cinfo);
}

/* Progressive JPEGs can hold thousands of tiny scans that take very long to decode. */
static void jpeg_on_progress(j_common_ptr cinfo) {
    if (cinfo->is_decompressor && ((j_decompress_ptr)cinfo)->input_scan_number > MAX_JPEG_SCANS) {
        jpeg_err *e = (jpeg_err *)cinfo->err;
        snprintf(e->msg, sizeof e->msg, "more than %d scans", MAX_JPEG_SCANS);
        longjmp(e->jb, 1);
    }
}

static cl_status decode_jpeg(FILE *f, const char *path, image *out, char *err, size_t errlen) {
    struct jpeg_decompress_struct cinfo;
    memset(&cinfo, 0, sizeof cinfo); /* cinfo.src is read after a longjmp */
    jpeg_err je;
    struct jpeg_progress_mgr progress = {.progress_monitor = jpeg_on_progress};
    cinfo.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpeg_on_error;
    je.pub.emit_message = jpeg_on_message;
    je.msg[0] = '\0';
    uint8_t *volatile pix = NULL;
    volatile cl_status st = CL_OK;
    if (setjmp(je.jb)) {
        long pos = ftell(f);
        if (cinfo.src && pos >= 0) pos -= (long)cinfo.src->bytes_in_buffer;
        if (st == CL_OK)
            st = cl_errorf(err, errlen, CL_ERR_FORMAT, "%s: corrupt JPEG near byte %ld: %s", path, pos,
                      je.msg);
        free(pix);
        jpeg_destroy_decompress(&cinfo);
        return st;
    }
    jpeg_create_decompress(&cinfo);
    cinfo.progress = &progress;
    jpeg_stdio_src(&cinfo, f);
    jpeg_read_header(&cinfo, TRUE);
    if ((st = check_size(path, cinfo.image_width, cinfo.image_height, err, errlen)) != CL_OK)
        longjmp(je.jb, 1);
    int oc;
    if (cinfo.num_components == 1 && cinfo.jpeg_color_space == JCS_GRAYSCALE) {
        cinfo.out_color_space = JCS_GRAYSCALE;
        oc = 1;
    } else if (cinfo.num_components == 3) {
        cinfo.out_color_space = JCS_RGB;
        oc = 3;
    } else {
        st = cl_errorf(err, errlen, CL_ERR_FORMAT,
                  "%s: JPEG with %d components (CMYK?) is not supported: convert it to RGB",
                  path, cinfo.num_components);
        longjmp(je.jb, 1);
    }
    jpeg_start_decompress(&cinfo);
    if (cinfo.output_components != oc) {
        st = cl_errorf(err, errlen, CL_ERR_FORMAT, "%s: unexpected JPEG output of %d components", path,
                  cinfo.output_components);
        longjmp(je.jb, 1);
    }
    size_t w = cinfo.output_width, h = cinfo.output_height, stride = w * (size_t)oc;
    pix = malloc(h * stride);
    if (!pix) {
        st = cl_errorf(err, errlen, CL_ERR_NOMEM, "%s: out of memory", path);
        longjmp(je.jb, 1);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pix + (size_t)cinfo.output_scanline * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    *out = (image){.h = (int)h, .w = (int)w, .c = oc, .pix = pix};
    return CL_OK;
}

/* The size a PNG's IHDR chunk declares (the 8 bytes after the signature are its length
 * and type, then width and height, big-endian), checked before libpng sees it: libpng
 * would refuse a side over its own limit as a corrupt file. f is left after the
 * signature. */
static cl_status png_header_size(FILE *f, const char *path, char *err, size_t errlen) {
    uint8_t h[16];
    size_t got = fread(h, 1, sizeof h, f);
    if (fseek(f, 8, SEEK_SET) != 0)
        return cl_errorf(err, errlen, CL_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
    if (got < sizeof h || memcmp(h + 4, "IHDR", 4) != 0) return CL_OK; /* libpng says what */
    long long w = (long long)h[8] << 24 | h[9] << 16 | h[10] << 8 | h[11];
    long long ht = (long long)h[12] << 24 | h[13] << 16 | h[14] << 8 | h[15];
    return check_size(path, w, ht, err, errlen);
}

/* Open path and decode it by its signature. */
static cl_status decode_file(const char *path, image *out, char *err, size_t errlen) {
    *out = (image){0};
    FILE *f = fopen(path, "rb");
    if (!f) return cl_errorf(err, errlen, CL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(f);
        return cl_errorf(err, errlen, CL_ERR_IO, "%s: is a directory, not a PNG or JPEG image",
                         path);
    }
    uint8_t sig[8];
    size_t got = fread(sig, 1, sizeof sig, f);
    cl_status st;
    if (ferror(f)) {
        st = cl_errorf(err, errlen, CL_ERR_IO, "%s: read error: %s", path, strerror(errno));
    } else if (got == 8 && !png_sig_cmp(sig, 0, 8)) {
        st = png_header_size(f, path, err, errlen);
        if (st == CL_OK) st = decode_png(f, path, out, err, errlen);
    } else if (got >= 3 && sig[0] == 0xff && sig[1] == 0xd8 && sig[2] == 0xff) {
        if (fseek(f, 0, SEEK_SET) != 0)
            st = cl_errorf(err, errlen, CL_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
        else
            st = decode_jpeg(f, path, out, err, errlen);
    } else if (got == 0) {
        st = cl_errorf(err, errlen, CL_ERR_FORMAT, "%s: empty file (0 bytes): not a PNG or JPEG image",
                  path);
    } else {
        char hex[3 * 8 + 1] = "";
        for (size_t i = 0; i < got; i++) snprintf(hex + 3 * i, 4, " %02x", sig[i]);
        st = cl_errorf(err, errlen, CL_ERR_FORMAT,
                  "%s: not a PNG or JPEG image (byte 0 starts with%s; a PNG starts with 89 50 "
                  "4e 47, a JPEG with ff d8 ff)",
                  path, hex);
    }
    fclose(f);
    return st;
}

/* ---- resizing ---------------------------------------------------------------------- */

/* Bilinear, align_corners=False: output pixel i samples the input at
 * (i + 0.5) * in / out - 0.5, clamped at 0 and at in - 1 (PyTorch's
 * upsample_bilinear2d). Writes dst [oh][ow][3] from src [h][w][sc], sc = 1 or 3
 * (a grey source fills R, G and B). */
static cl_status resize_into(const image *src, uint8_t *dst, int oh, int ow) {
    int *x0 = malloc((size_t)ow * sizeof *x0);
    double *xl = malloc((size_t)ow * sizeof *xl);
    if (!x0 || !xl) {
        free(x0);
        free(xl);
        return CL_ERR_NOMEM;
    }
    const double sx = (double)src->w / ow, sy = (double)src->h / oh;
    for (int x = 0; x < ow; x++) {
        double fx = (x + 0.5) * sx - 0.5;
        if (fx < 0) fx = 0;
        x0[x] = (int)fx;
        if (x0[x] > src->w - 1) x0[x] = src->w - 1;
        xl[x] = fx - x0[x];
    }
    const int sc = src->c;
    for (int y = 0; y < oh; y++) {
        double fy = (y + 0.5) * sy - 0.5;
        if (fy < 0) fy = 0;
        int y0 = (int)fy;
        if (y0 > src->h - 1) y0 = src->h - 1;
        int y1 = y0 < src->h - 1 ? y0 + 1 : y0;
        double ly = fy - y0;
        const uint8_t *r0 = src->pix + (size_t)y0 * src->w * sc;
        const uint8_t *r1 = src->pix + (size_t)y1 * src->w * sc;
        for (int x = 0; x < ow; x++) {
            int xa = x0[x], xb = xa < src->w - 1 ? xa + 1 : xa;
            double lx = xl[x];
            for (int k = 0; k < 3; k++) {
                int kk = sc == 1 ? 0 : k;
                double top = r0[xa * sc + kk] * (1 - lx) + r0[xb * sc + kk] * lx;
                double bot = r1[xa * sc + kk] * (1 - lx) + r1[xb * sc + kk] * lx;
                double v = top * (1 - ly) + bot * ly + 0.5;
                dst[((size_t)y * ow + x) * 3 + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    free(x0);
    free(xl);
    return CL_OK;
}

/* ---- the loader ---------------------------------------------------------------------- */

cl_status cl_load_image_folder(const char *dir, int resize_h, int resize_w, cl_dataset *out,
                               char *err, size_t errlen) {
    if (!out) return cl_errorf(err, errlen, CL_ERR_ARG, "cl_load_image_folder: out is NULL");
    *out = (cl_dataset){0};
    if (!dir) return cl_errorf(err, errlen, CL_ERR_ARG, "cl_load_image_folder: dir is NULL");
    if (resize_h < 0 || resize_w < 0 || (resize_h > 0) != (resize_w > 0) ||
        resize_h > MAX_SIDE || resize_w > MAX_SIDE)
        return cl_errorf(err, errlen, CL_ERR_ARG,
                    "resize %dx%d: give both sides (1..%d), or 0x0 for no resizing", resize_h,
                    resize_w, MAX_SIDE);
    const bool resize = resize_h > 0;
    name_list classes;
    cl_status st = list_dir(dir, true, &classes, err, errlen);
    if (st != CL_OK) return st;
    if (classes.n == 0) {
        list_free(&classes);
        return cl_errorf(err, errlen, CL_ERR_FORMAT,
                    "%s has no class subfolders: expected one folder per class holding its PNG "
                    "or JPEG images (%s/CLASS/IMAGE.png)",
                    dir, dir);
    }
    /* Every class's file list first: the total sizes the allocation. */
    const int ncls = classes.n;
    name_list *files = calloc((size_t)classes.n, sizeof *files);
    char **class_dirs = calloc((size_t)classes.n, sizeof *class_dirs);
    int64_t total = 0;
    image img = {0};
    char *path = NULL;
    if (!files || !class_dirs) {
        st = cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int k = 0; k < classes.n; k++) {
        if (!(class_dirs[k] = cl_path_join(dir, classes.names[k]))) {
            st = cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
            goto done;
        }
        if ((st = list_dir(class_dirs[k], false, &files[k], err, errlen)) != CL_OK) goto done;
        if (files[k].n == 0) {
            char other[400] = "";
            if (files[k].skipped)
                snprintf(other, sizeof other, " (%d other file%s, e.g. %s, skipped)",
                         files[k].skipped, files[k].skipped > 1 ? "s" : "",
                         files[k].first_skipped);
            st = cl_errorf(err, errlen, CL_ERR_FORMAT,
                      "%s: empty class folder: no .png, .jpg or .jpeg images%s; every class "
                      "needs at least one image",
                      class_dirs[k], other);
            goto done;
        }
        total += files[k].n;
        if (total > INT_MAX) {
            st = cl_errorf(err, errlen, CL_ERR_FORMAT, "%s: more than %d images", dir, INT_MAX);
            goto done;
        }
    }
    out->n = (int)total;
    out->classes = classes.n;
    out->class_names = classes.names; /* the folder names, now owned by out */
    classes.names = NULL;
    classes.n = 0;
    list_free(&classes);
    if (!(out->labels = malloc((size_t)total * sizeof *out->labels))) {
        st = cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* Images are stored as RGB while decoding; an all-grey dataset is packed to one
     * channel at the end. */
    bool all_grey = true;
    char *first = NULL; /* the first image's path, for size messages */
    int H = resize_h, W = resize_w;
    int64_t i = 0;
    for (int k = 0; k < out->classes && st == CL_OK; k++) {
        for (int j = 0; j < files[k].n; j++, i++) {
            if (!(path = cl_path_join(class_dirs[k], files[k].names[j]))) {
                st = cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
                break;
            }
            if ((st = decode_file(path, &img, err, errlen)) != CL_OK) break;
            if (i == 0) {
                if (!resize) {
                    H = img.h;
                    W = img.w;
                }
                size_t bytes = (size_t)total * (size_t)H * (size_t)W * 3;
                if (bytes / 3 / (size_t)H / (size_t)W != (size_t)total ||
                    !(out->images = malloc(bytes))) {
                    st = cl_errorf(err, errlen, CL_ERR_NOMEM,
                              "out of memory for %lld images of %dx%d", (long long)total, H, W);
                    break;
                }
                first = path;
                path = NULL;
            } else if (!resize && (img.h != H || img.w != W)) {
                st = cl_errorf(err, errlen, CL_ERR_FORMAT,
                          "%s: image %lld is %dx%d (HxW) but the first image, %s, is %dx%d: every "
                          "image must have the same size, or pass a resize size",
                          path, (long long)i, img.h, img.w, first, H, W);
                break;
            }
            if (img.c == 3) all_grey = false;
            uint8_t *dst = out->images + (size_t)i * (size_t)H * (size_t)W * 3;
            if (img.h == H && img.w == W) {
                size_t npx = (size_t)H * W;
                for (size_t p = 0; p < npx; p++)
                    for (int c = 0; c < 3; c++)
                        dst[p * 3 + c] = img.pix[p * img.c + (img.c == 3 ? c : 0)];
            } else if (resize_into(&img, dst, H, W) != CL_OK) {
                st = cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
                break;
            }
            out->labels[i] = k;
            free(img.pix);
            img.pix = NULL;
            free(path);
            path = NULL;
        }
    }
    free(first);
    if (st != CL_OK) goto done;
    out->h = H;
    out->w = W;
    out->c = 3;
    if (all_grey) {
        size_t npx = (size_t)total * H * W;
        for (size_t p = 0; p < npx; p++) out->images[p] = out->images[p * 3];
        uint8_t *shrunk = realloc(out->images, npx);
        if (shrunk) out->images = shrunk;
        out->c = 1;
    }
done:
    free(img.pix);
    free(path);
    if (files)
        for (int k = 0; k < ncls; k++) list_free(&files[k]);
    if (class_dirs)
        for (int k = 0; k < ncls; k++) free(class_dirs[k]);
    free(files);
    free(class_dirs);
    list_free(&classes);
    if (st != CL_OK) cl_dataset_free(out);
    return st;
}

/* ---- one image ------------------------------------------------------------------- */

cl_status cl_load_image(const char *path, int c, int h, int w, uint8_t **out, char *err,
                        size_t errlen) {
    *out = NULL;
    if ((c != 1 && c != 3) || h < 1 || w < 1 || (long long)h * w > MAX_PIXELS)
        return cl_errorf(err, errlen, CL_ERR_ARG, "%s: cannot produce a %dx%dx%d image", path, c, h, w);
    image img;
    cl_status st = decode_file(path, &img, err, errlen);
    if (st != CL_OK) return st;
    /* RGB at the wanted size first (resize_into writes RGB), then grey if asked */
    uint8_t *rgb = malloc((size_t)h * w * 3);
    if (!rgb) {
        free(img.pix);
        return cl_errorf(err, errlen, CL_ERR_NOMEM, "%s: out of memory", path);
    }
    if (img.h == h && img.w == w) {
        for (size_t p = 0; p < (size_t)h * w; p++)
            for (int k = 0; k < 3; k++) rgb[p * 3 + k] = img.pix[p * img.c + (img.c == 3 ? k : 0)];
    } else if (resize_into(&img, rgb, h, w) != CL_OK) {
        free(img.pix);
        free(rgb);
        return cl_errorf(err, errlen, CL_ERR_NOMEM, "%s: out of memory", path);
    }
    bool grey_source = img.c == 1;
    free(img.pix);
    if (c == 3) {
        *out = rgb;
        return CL_OK;
    }
    uint8_t *g = malloc((size_t)h * w);
    if (!g) {
        free(rgb);
        return cl_errorf(err, errlen, CL_ERR_NOMEM, "%s: out of memory", path);
    }
    /* ITU-R 601 luma, as PIL's convert("L") */
    for (size_t p = 0; p < (size_t)h * w; p++)
        g[p] = grey_source ? rgb[p * 3]
                           : (uint8_t)((rgb[p * 3] * 299 + rgb[p * 3 + 1] * 587 + rgb[p * 3 + 2] * 114 + 500) / 1000);
    free(rgb);
    *out = g;
    return CL_OK;
}
