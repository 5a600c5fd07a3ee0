import CMicroHTTPD
import CCurl
import BakeoffHTTP

/// Versions of the C libraries the gateway runs on, for `bakeoff --version` and bug reports.
public enum LibraryVersions {
    public static var microhttpd: String { String(cString: MHD_get_version()) }
    public static var curl: String { String(cString: curl_version()) }
}
