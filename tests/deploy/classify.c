/* classify.c: the README's example of an exported model in use (tests/test_deploy.sh
 * compiles and runs it): one image, CHW float32 on the 0..1 scale, on stdin. */
#include <stdio.h>
#include "model.h"

int main(void) {
    static float pixels[MODEL_INPUT_C * MODEL_INPUT_H * MODEL_INPUT_W];
    float logits[MODEL_CLASSES];
    if (fread(pixels, sizeof pixels, 1, stdin) != 1) return 1;
    int k = model_predict(pixels, logits);
    printf("%s (logit %.3f)\n", model_class_names[k], logits[k]);
    return 0;
}
