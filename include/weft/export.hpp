// weft/export.hpp — symbol visibility for the weft shared library.
#pragma once

#if defined(WEFT_STATIC)
#define WEFT_EXPORT
#elif defined(WEFT_BUILDING)
#define WEFT_EXPORT __attribute__((visibility("default")))
#else
#define WEFT_EXPORT __attribute__((visibility("default")))
#endif
