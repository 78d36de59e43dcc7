/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* A main() for a libFuzzer target without libFuzzer: runs the target once
 * on each file named on the command line, or on each file in a directory
 * named there (sorted by name, dot files skipped). Arguments that begin
 * with '-' are libFuzzer options and are ignored, so the same command line
 * works for both. Prints one summary line to stderr; exits 0 once every
 * input ran, 1 if an input could not be read or none was given. A target
 * that finds a bug aborts, which ends the run. */

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional: a target that defines it learns the base name of the file
 * whose contents the next LLVMFuzzerTestOneInput() gets. */
extern "C" __attribute__((weak)) void fuzz_input_name(const char *name);

namespace {

bool read_file(const std::string &path, std::vector<uint8_t> *ret) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    std::vector<uint8_t> data;
    uint8_t chunk[4096];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int saved = errno;
            close(fd);
            errno = saved;
            return false;
        }
        if (n == 0) break;
        data.insert(data.end(), chunk, chunk + n);
    }
    close(fd);
    *ret = std::move(data);
    return true;
}

/* Appends the files of directory path to ret, sorted. */
bool list_directory(const std::string &path, std::vector<std::string> *ret) {
    DIR *d = opendir(path.c_str());
    if (!d) return false;
    std::vector<std::string> names;
    while (struct dirent *e = readdir(d))
        if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto &name : names) ret->push_back(path + "/" + name);
    return true;
}

}  // namespace

int main(int argc, char **argv) {
    std::vector<std::string> files;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') continue;
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "%s: %s: %s\n", argv[0], argv[i], strerror(errno));
            return 1;
        }
        if (S_ISDIR(st.st_mode)) {
            if (!list_directory(argv[i], &files)) {
                fprintf(stderr, "%s: %s: %s\n", argv[0], argv[i], strerror(errno));
                return 1;
            }
        } else {
            files.emplace_back(argv[i]);
        }
    }
    if (files.empty()) {
        fprintf(stderr, "usage: %s FILE|DIRECTORY...\n", argv[0]);
        return 1;
    }

    for (const auto &path : files) {
        std::vector<uint8_t> data;
        if (!read_file(path, &data)) {
            fprintf(stderr, "%s: %s: %s\n", argv[0], path.c_str(), strerror(errno));
            return 1;
        }
        if (fuzz_input_name) {
            size_t slash = path.rfind('/');
            fuzz_input_name(path.c_str() + (slash == std::string::npos ? 0 : slash + 1));
        }
        LLVMFuzzerTestOneInput(data.data(), data.size());
    }
    fprintf(stderr, "%s: ran %zu inputs\n", argv[0], files.size());
    return 0;
}
