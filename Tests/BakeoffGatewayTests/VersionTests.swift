import Testing
import BakeoffGateway

@Test func librariesAreLinked() {
    #expect(!LibraryVersions.microhttpd.isEmpty)
    #expect(LibraryVersions.curl.hasPrefix("libcurl/"))
}
