#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <sys/ioctl.h>

/* Bytes received on the socket and not yet read (FIONREAD), or -1 (no socket, error).
   ioctl is variadic, which Swift cannot call. */
static inline int forewarn_socket_unread_bytes(int fd) {
    int n = 0;
    if (fd < 0 || ioctl(fd, FIONREAD, &n) != 0) return -1;
    return n;
}
