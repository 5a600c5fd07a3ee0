// What Swift cannot call in libmicrohttpd directly: its variadic info getter.
#ifndef BAKEOFF_MHD_SUPPORT_H
#define BAKEOFF_MHD_SUPPORT_H

/// The socket of a connection (a `struct MHD_Connection *`), or -1.
int bakeoff_mhd_connection_fd(void *connection);

#endif
