// SPDX-License-Identifier: Apache-2.0
#include "portico/core/shared_bytes.h"

#include <new>

#include <event2/buffer.h>

namespace portico::core {

SharedBytesRef SharedBytes::make(std::size_t size) {
    // The bytes follow the object in one allocation: one malloc per encoded frame.
    void* memory = ::operator new(sizeof(SharedBytes) + size, std::nothrow);
    if (memory == nullptr) return {};
    return SharedBytesRef(new (memory) SharedBytes(size));
}

void SharedBytes::unref() const {
    if (--count_ > 0) return;
    auto* self = const_cast<SharedBytes*>(this);
    self->~SharedBytes();
    ::operator delete(self);
}

void SharedBytes::release(const void*, std::size_t, void* self) { static_cast<const SharedBytes*>(self)->unref(); }

bool SharedBytes::appendTo(evbuffer* out, std::size_t offset) const {
    if (offset >= size_) return true;
    const std::size_t len = size_ - offset;
    if (len < kCopyBelow) return evbuffer_add(out, data() + offset, len) == 0;
    ref();  // the buffer's, released when it has drained these bytes (or is freed)
    if (evbuffer_add_reference(out, data() + offset, len, &SharedBytes::release, const_cast<SharedBytes*>(this)) != 0) {
        unref();
        return false;
    }
    return true;
}

}  // namespace portico::core
