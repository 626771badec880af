/* ImageFolder layout (torchvision's): ROOT/train/<class>/<image>.png and ROOT/val/<class>/<image>.png
 * (or ROOT/test/ when there is no val/). Classes are the train folder names sorted
 * bytewise, so class ids do not depend on the file system's listing order. Only the
 * files directly inside a class folder are used. */
#include <stdlib.h>
#include <string.h>

#include "ds_internal.h"

static st_status oom(st_error *err) { return st_errorf(err, ST_ERR_NOMEM, "out of memory indexing the dataset"); }

/* Problem-only item for a file or folder whose name is not valid UTF-8. */
static st_status bad_name(ds_items *items, const char *path, int is_image, const char *hint,
                          st_error *err) {
    ds_item *it = ds_items_add(items);
    char *shown = ds_shown(path);
    if (!it || !shown) {
        free(shown);
        return oom(err);
    }
    it->is_image = is_image;
    st_status s = ds_item_problem(it, 0, ST_LBL_BAD_NAME, err,
                                  "%s: file name is not valid UTF-8 (rename it%s)", shown, hint);
    free(shown);
    return s;
}

/* Adds the images of one class folder: PNGs to decode, JPEGs and bad names as problems. */
static st_status add_class(const char *cdir, int label, ds_items *items, st_error *err) {
    ds_strv files;
    st_status s = ds_list(cdir, 0, &files, err);
    for (int i = 0; s == ST_OK && i < files.n; i++) {
        const char *name = files.v[i];
        int png = ds_is_png_name(name), jpeg = ds_is_jpeg_name(name);
        if (!png && !jpeg) continue; /* README, .DS_Store, ...: not ours to judge */
        char *path = ds_join(cdir, name);
        if (!path) {
            s = oom(err);
            break;
        }
        if (!ds_utf8_valid(name)) {
            s = bad_name(items, path, 1, "", err);
            free(path);
            continue;
        }
        ds_item *it = ds_items_add(items);
        if (!it) {
            free(path);
            s = oom(err);
            break;
        }
        it->is_image = 1;
        it->label = label;
        if (jpeg) {
            char *shown = ds_shown(path);
            s = shown ? ds_item_problem(it, 1, ST_IMG_UNSUPPORTED, err,
                                        "%s: JPEG is not supported (convert to PNG)", shown)
                      : oom(err);
            free(shown);
            free(path);
        } else {
            it->path = path; /* decoded by ds_finish_split */
        }
    }
    ds_strv_free(&files);
    return s;
}

static int find_class(const st_dataset *d, const char *name) {
    for (int i = 0; i < d->n_classes; i++)
        if (strcmp(d->class_names[i], name) == 0) return i;
    return -1;
}

/* Indexes one split folder. For train, the class list is built from its folders; for
 * val, every folder must name a training class (a class the model has no output for
 * could never be predicted, so it is a mistake in the data, not a skip). */
static st_status index_split(const st_dataset *d, const char *sdir, int is_train, ds_strv *dirs,
                             ds_items *items, st_error *err) {
    for (int c = 0; c < dirs->n; c++) {
        char *cdir = ds_join(sdir, dirs->v[c]);
        if (!cdir) return oom(err);
        st_status s = ST_OK;
        int label = find_class(d, dirs->v[c]);
        if (!ds_utf8_valid(dirs->v[c])) {
            s = bad_name(items, cdir, 0, "; its images are not used", err);
        } else if (label < 0 && !is_train) {
            char *shown = ds_shown(cdir);
            s = st_errorf(err, ST_ERR_INPUT,
                          "%s: class '%s' is not in %s/train; validation classes must be "
                          "training classes (add train/%s or remove the folder)",
                          shown ? shown : cdir, dirs->v[c], d->root, dirs->v[c]);
            free(shown);
        } else {
            s = add_class(cdir, label, items, err);
        }
        free(cdir);
        if (s != ST_OK) return s;
    }
    return ST_OK;
}

st_status ds_open_folder(const char *root, const st_ds_opts *o, st_dataset *d, st_error *err) {
    d->kind = ST_DS_FOLDER;
    ds_strv tdirs = {0}, vdirs = {0};
    ds_items titems = {0}, vitems = {0};
    char *tdir = ds_join(root, "train"), *vdir = NULL;
    const char *vname = NULL;
    st_status s = ST_OK;
    if (!tdir) {
        s = oom(err);
        goto done;
    }
    if ((s = ds_list(tdir, 1, &tdirs, err)) != ST_OK) goto done;
    int n_good = 0;
    for (int i = 0; i < tdirs.n; i++) n_good += ds_utf8_valid(tdirs.v[i]);
    if (n_good == 0) {
        s = st_errorf(err, ST_ERR_INPUT,
                      "%s: no class folders; ImageFolder expects train/<class>/*.png (one folder "
                      "per class)",
                      tdir);
        goto done;
    }
    d->class_names = calloc((size_t)n_good, sizeof *d->class_names);
    if (!d->class_names) {
        s = oom(err);
        goto done;
    }
    for (int i = 0; i < tdirs.n; i++) /* sorted by ds_list: ids follow the sorted names */
        if (ds_utf8_valid(tdirs.v[i])) {
            if (!(d->class_names[d->n_classes] = ds_strdup(tdirs.v[i]))) {
                s = oom(err);
                goto done;
            }
            d->n_classes++;
        }
    if ((s = index_split(d, tdir, 1, &tdirs, &titems, err)) != ST_OK) goto done;

    /* torchvision-style sets often ship test/ instead of val/. */
    vname = "val";
    vdir = ds_join(root, "val");
    if (vdir && !ds_is_dir(vdir)) {
        free(vdir);
        vname = "test";
        vdir = ds_join(root, "test");
        if (vdir && !ds_is_dir(vdir)) {
            free(vdir);
            vdir = NULL;
            vname = NULL;
        }
    }
    if (vname && !vdir) {
        s = oom(err);
        goto done;
    }
    if (vdir) {
        if ((s = ds_list(vdir, 1, &vdirs, err)) != ST_OK) goto done;
        if ((s = index_split(d, vdir, 0, &vdirs, &vitems, err)) != ST_OK) goto done;
    }

    if ((s = ds_finish_split(&titems, o, &d->train, &d->report, err)) != ST_OK) goto done;
    int train_skipped = d->report.images_skipped;
    if (vdir && (s = ds_finish_split(&vitems, o, &d->val, &d->report, err)) != ST_OK) goto done;
    if (d->train.n == 0) {
        s = st_errorf(err, ST_ERR_INPUT, "no usable image in %s: %d skipped%s", tdir, train_skipped,
                      train_skipped ? ", see above" : "; expected train/<class>/*.png");
        goto done;
    }
    /* An empty class still gets its id (ids must follow the folder order), but a model
     * cannot learn it: worth a line. */
    int *count = calloc((size_t)d->n_classes, sizeof *count);
    if (!count) {
        s = oom(err);
        goto done;
    }
    for (int i = 0; i < d->train.n; i++) count[d->train.samples[i].label]++;
    for (int c = 0; c < d->n_classes; c++)
        if (count[c] == 0)
            ds_note(o, "%s/%s: class '%s' has no usable image; it keeps id %d but cannot be learned",
                    tdir, d->class_names[c], d->class_names[c], c);
    free(count);
    /* The summary prints it as "N classes (<about>)". */
    d->about = ds_strdup(!vdir                         ? "from the folder names; no val/ or test/ folder"
                         : strcmp(vname, "test") == 0 ? "from the folder names; val from test/"
                                                      : "from the folder names");
    if (!d->about) s = oom(err);
done:
    ds_items_free(&titems);
    ds_items_free(&vitems);
    ds_strv_free(&tdirs);
    ds_strv_free(&vdirs);
    free(tdir);
    free(vdir);
    return s;
}
