// Typed wrappers around libcurl's variadic calls, which Swift cannot call directly.
#ifndef BAKEOFF_CCURL_H
#define BAKEOFF_CCURL_H
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <curl/curl.h>

typedef size_t (*bakeoff_curl_data_callback)(char *data, size_t size, size_t count, void *context);

CURLcode bakeoff_curl_set_long(CURL *handle, CURLoption option, long value);
CURLcode bakeoff_curl_set_string(CURL *handle, CURLoption option, const char *value);
CURLcode bakeoff_curl_set_pointer(CURL *handle, CURLoption option, void *value);
CURLcode bakeoff_curl_set_slist(CURL *handle, CURLoption option, struct curl_slist *value);
CURLcode bakeoff_curl_set_data_callback(CURL *handle, CURLoption option, bakeoff_curl_data_callback callback);
CURLcode bakeoff_curl_get_long(CURL *handle, CURLINFO info, long *value);
CURLcode bakeoff_curl_get_double(CURL *handle, CURLINFO info, double *value);
CURLcode bakeoff_curl_get_pointer(CURL *handle, CURLINFO info, void **value);
CURLMcode bakeoff_curl_multi_set_long(CURLM *multi, CURLMoption option, long value);
CURLMcode bakeoff_curl_multi_set_pointer(CURLM *multi, CURLMoption option, void *value);
CURLMcode bakeoff_curl_multi_set_socket_function(CURLM *multi, curl_socket_callback callback);
CURLMcode bakeoff_curl_multi_set_timer_function(CURLM *multi, curl_multi_timer_callback callback);

#endif
