/* YOLOv5 (v6+) detector builder used by models.c; private to train/. */
#ifndef ST_MODELS_YOLO_H
#define ST_MODELS_YOLO_H

#include "st_graph.h"

/* Appends YOLOv5 with the given depth and width multiples to g after input value x and
 * marks its three Detect outputs (P3, P4, P5: raw maps of 3 * (nc + 5) channels).
 * Builder errors are left in g's sticky error. */
void st_yolov5_build(st_graph *g, int x, int nc, double depth, double width);

#endif
