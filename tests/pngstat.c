/* pngstat.c: prints one line about a PNG file, "width height distinct_colors
 * nonwhite_fraction", for the shell tests of figures (a blank or broken plot shows
 * as few colours or almost no ink). A pixel is non-white when any channel is below
 * 250; transparent pixels are composited over white first. Not a test itself.
 * Exits 1 with a message on an unreadable or invalid file, 2 on bad usage.
 *   build/tests/pngstat report/curves.png   ->   1040 756 3518 0.061234 */
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PIXELS (100L * 1000 * 1000) /* 300 MB of RGB: far beyond any figure */
#define WHITE_MIN 250

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: pngstat FILE.png\n");
        return 2;
    }
    const char *path = argv[1];
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&image, path)) {
        fprintf(stderr, "pngstat: %s: %s\n", path, image.message);
        return 1;
    }
    if ((long)image.width * image.height > MAX_PIXELS) {
        fprintf(stderr, "pngstat: %s: %ux%u pixels, more than %ld\n", path, image.width,
                image.height, MAX_PIXELS);
        png_image_free(&image);
        return 1;
    }
    image.format = PNG_FORMAT_RGB;
    png_color white = {255, 255, 255};
    size_t npixels = (size_t)image.width * image.height;
    uint8_t *rgb = malloc(PNG_IMAGE_SIZE(image));
    /* One bit per 24-bit colour: 2 MiB, whatever the image size. */
    uint8_t *seen = calloc((size_t)1 << 21, 1);
    if (!rgb || !seen) {
        fprintf(stderr, "pngstat: %s: out of memory\n", path);
        free(rgb);
        free(seen);
        png_image_free(&image);
        return 1;
    }
    if (!png_image_finish_read(&image, &white, rgb, 0, NULL)) {
        fprintf(stderr, "pngstat: %s: %s\n", path, image.message);
        free(rgb);
        free(seen);
        return 1;
    }
    size_t distinct = 0, nonwhite = 0;
    for (size_t i = 0; i < npixels; i++) {
        const uint8_t *p = rgb + 3 * i;
        uint32_t colour = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
        if (!(seen[colour >> 3] & (1u << (colour & 7)))) {
            seen[colour >> 3] |= (uint8_t)(1u << (colour & 7));
            distinct++;
        }
        nonwhite += p[0] < WHITE_MIN || p[1] < WHITE_MIN || p[2] < WHITE_MIN;
    }
    printf("%u %u %zu %.6f\n", image.width, image.height, distinct,
           npixels ? (double)nonwhite / (double)npixels : 0.0);
    free(rgb);
    free(seen);
    return 0;
}
