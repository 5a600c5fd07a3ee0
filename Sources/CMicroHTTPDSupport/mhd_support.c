#include <sys/types.h>
#include <sys/socket.h>
#include <stdint.h>
#include <stdarg.h>
#include <microhttpd.h>
#include "mhd_support.h"

int bakeoff_mhd_connection_fd(void *connection) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info((struct MHD_Connection *)connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    return info ? (int)info->connect_fd : -1;
}

void *bakeoff_mhd_socket_context(void *connection) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info((struct MHD_Connection *)connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

int bakeoff_mhd_daemon_epoll_fd(void *daemon) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info((struct MHD_Daemon *)daemon, MHD_DAEMON_INFO_EPOLL_FD);
    return info ? (int)info->epoll_fd : -1;
}
