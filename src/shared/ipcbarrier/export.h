/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Marks the functions that the shared library exports; everything else is
 * built with hidden visibility. */
#define IPCBARRIER_EXPORT __attribute__((visibility("default")))
