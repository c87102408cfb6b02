// weft/internet/defer.hpp — Deferreds, Failures on the error path, coroutines
// and the Deferred combinators and primitives. Mirrors twisted.internet.defer
// (spec: defer.md DEF-1 … DEF-59).
//
//   core.hpp        Result<T>, the defer:: errors, setDebugging/getDebugging
//   deferred.hpp    Deferred<T>, co_await/co_return, succeed, fail,
//                   maybeDeferred, ensureDeferred, logError
//   list.hpp        DeferredList, gatherResults, race
//   primitives.hpp  DeferredLock, DeferredSemaphore, DeferredQueue
#pragma once

#include <weft/internet/defer/core.hpp>
#include <weft/internet/defer/deferred.hpp>
#include <weft/internet/defer/list.hpp>
#include <weft/internet/defer/primitives.hpp>
