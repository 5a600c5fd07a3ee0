// Typed wrappers around libcurl's variadic calls, which Swift cannot call directly.
#ifndef BAKEOFF_CCURL_H
#define BAKEOFF_CCURL_H
#include <stddef.h>
#include <stdint.h>
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

#endif
