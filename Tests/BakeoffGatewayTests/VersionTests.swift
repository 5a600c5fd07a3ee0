import Testing
import BakeoffGateway
import BakeoffHTTP

@Test func librariesAreLinked() {
    #expect(!LibraryVersions.microhttpd.isEmpty)
    #expect(LibraryVersions.curl.hasPrefix("libcurl/"))
}
