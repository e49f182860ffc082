// Image bytes <-> pixels in the browser: encoding a canvas, decoding a Blob with its
// transparency kept straight, thumbnails and sizes. No state; used by the drawing pad
// and the page's wiring.

export function canvasBlob(canvas, message) {
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error(message))), "image/png"),
  );
}

export async function pixelsBlob(pixels, width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d").putImageData(new ImageData(pixels, width, height), 0, 0);
  return canvasBlob(canvas, "The mask could not be encoded.");
}

export async function decoded(url) {
  const img = new Image();
  img.src = url;
  await img.decode();
  return img;
}

/**
 * An image Blob's pixels as straight (not premultiplied) RGBA:
 * {width, height, data, exact}. A 2D canvas premultiplies, which loses the
 * RGB under alpha 0; for images with transparency WebGL reads them straight.
 * Where WebGL is missing, the 2D path is used and `exact` is false.
 */
export async function decodeStraight(blob, { hasAlpha = true } = {}) {
  const bitmap = await createImageBitmap(blob, { premultiplyAlpha: "none", colorSpaceConversion: "none" });
  try {
    const { width, height } = bitmap;
    const straight = hasAlpha ? readWithWebGL(bitmap) : null;
    if (straight) return { width, height, data: straight, exact: true };
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(bitmap, 0, 0);
    return { width, height, data: ctx.getImageData(0, 0, width, height).data, exact: !hasAlpha };
  } finally {
    bitmap.close?.();
  }
}

function readWithWebGL(bitmap) {
  let gl = null;
  try {
    gl = document.createElement("canvas").getContext("webgl", { premultipliedAlpha: false });
    if (!gl) return null;
    const { width, height } = bitmap;
    if (width > gl.getParameter(gl.MAX_TEXTURE_SIZE) || height > gl.getParameter(gl.MAX_TEXTURE_SIZE)) return null;
    gl.bindTexture(gl.TEXTURE_2D, gl.createTexture());
    gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
    gl.pixelStorei(gl.UNPACK_COLORSPACE_CONVERSION_WEBGL, gl.NONE);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, bitmap);
    gl.bindFramebuffer(gl.FRAMEBUFFER, gl.createFramebuffer());
    gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, gl.getParameter(gl.TEXTURE_BINDING_2D), 0);
    if (gl.checkFramebufferStatus(gl.FRAMEBUFFER) !== gl.FRAMEBUFFER_COMPLETE) return null;
    const out = new Uint8ClampedArray(width * height * 4);
    // The texture's row 0 is the image's top row, and readPixels starts at row 0: no flip.
    gl.readPixels(0, 0, width, height, gl.RGBA, gl.UNSIGNED_BYTE, out);
    return gl.getError() === gl.NO_ERROR ? out : null;
  } catch {
    return null;
  } finally {
    gl?.getExtension("WEBGL_lose_context")?.loseContext();
  }
}

/** A small PNG data URL of an image (File/Blob), for the init thumbnail that survives reloads. */
export async function thumbnailDataUrl(blob, max = 192) {
  const bitmap = await createImageBitmap(blob);
  const scale = Math.min(1, max / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close?.();
  return canvas.toDataURL("image/png");
}

/** An image Blob's pixel size: {width, height}. Rejects when the browser cannot decode it. */
export async function imageSize(blob) {
  const bitmap = await createImageBitmap(blob);
  const size = { width: bitmap.width, height: bitmap.height };
  bitmap.close?.();
  return size;
}
