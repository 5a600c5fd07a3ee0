// What Swift cannot call in libmicrohttpd directly: its variadic info getter.
#ifndef BAKEOFF_MHD_SUPPORT_H
#define BAKEOFF_MHD_SUPPORT_H

/// The socket of a connection (a `struct MHD_Connection *`), or -1.
int bakeoff_mhd_connection_fd(void *connection);

/// The connection's socket context (what MHD_OPTION_NOTIFY_CONNECTION stored for it), or NULL.
void *bakeoff_mhd_socket_context(void *connection);

/// The epoll descriptor of a daemon started with MHD_USE_EPOLL and no internal thread, or -1.
int bakeoff_mhd_daemon_epoll_fd(void *daemon);

#endif
